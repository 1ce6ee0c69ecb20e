"""`python -m producers ...`: the `kakao-dispatch` command (the sandbox starts its gateway this way)."""

from producers.cli import main

if __name__ == "__main__":
    main()
