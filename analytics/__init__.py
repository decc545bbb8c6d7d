"""Polars jobs over events, violations and complaints: routing performance and retrospectives."""
