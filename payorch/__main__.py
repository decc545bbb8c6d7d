from payorch.cli import main

main()
