"""``python -m flask_ai_sse.testing.upstream``: one mock format served under gevent."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import FORMATS, MockReply


def main(argv: Sequence[str] | None = None) -> None:
    """Serve one format under gevent until killed, e.g. for a benchmark's upstream."""
    parser = argparse.ArgumentParser(
        prog="python -m flask_ai_sse.testing.upstream", description=main.__doc__
    )
    parser.add_argument("--format", choices=sorted(FORMATS), default="openai")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--tokens", type=int, default=50, help="text pieces per answer")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="pause between pieces")
    parser.add_argument("--api-key", default=None, help="require this key (default: any)")
    args = parser.parse_args(argv)

    try:  # one socket per stream: ask for every descriptor the hard limit allows
        import resource

        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass

    reply = MockReply(chunks=[f"tok{i} " for i in range(args.tokens)], delay=args.delay_ms / 1000)
    mock = FORMATS[args.format](
        host=args.host, port=args.port, api_key=args.api_key, default=reply, record=False
    )
    mock.serve_gevent(ready=lambda url: print(f"{args.format} mock upstream at {url}", flush=True))


if __name__ == "__main__":
    main()


if __name__ == "__main__":
    main()
