"""``relay-sim``: the simulators' command line.

    relay-sim carrier  --profile skt|kt|lgu --listen 127.0.0.1:PORT [...]
    relay-sim upstream --target 127.0.0.1:PORT --system-id ID --password PW [...]

Each subcommand's own ``--help`` lists its flags.
"""

from __future__ import annotations

import sys

USAGE = """usage: relay-sim {carrier,upstream} [options]

  carrier    run a carrier SMSC simulator (SKT, KT or LG U+ profile)
  upstream   run the upstream SMPP load client against an SMSC or relayd

'relay-sim carrier --help' and 'relay-sim upstream --help' list the options.
"""


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "carrier":
        from simulators import carrier

        return carrier.main(rest)
    if command == "upstream":
        from simulators import upstream

        return upstream.main(rest)
    sys.stderr.write(f"relay-sim: unknown command {command!r}\n{USAGE}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
