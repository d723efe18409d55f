"""`python -m reproduction`: see reproduction.run."""

from reproduction.run import main

main()
