"""``python -m capacity`` and the ``capacity`` command. Ctrl-C while the command's modules load
is "interrupted" (exit 130) like any other moment, not a KeyboardInterrupt traceback (#23: it
printed one when pressed during start-up)."""

import sys


def main() -> None:
    try:
        from capacity.cli import main as run
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        raise SystemExit(130) from None
    run()


if __name__ == "__main__":
    main()
