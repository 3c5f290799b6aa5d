from .publish import main

main()
