"""Entry point of the uvicorn process: ``python -m helpers.server.serve --port N``.

Started by :func:`helpers.server.start`; settings come from environment variables
(see :mod:`helpers.server.app`). Binds 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m helpers.server.serve")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    # jsonschema imports rfc3987_syntax, when installed, to check "iri" formats, and that
    # compiles a grammar at import: 1.5 s, half of a warm start. This API never validates
    # JSON schemas (read-only, no transactions), so the import is skipped in this process.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

    import uvicorn

    uvicorn.run(
        "helpers.server.app:create_app",
        factory=True,
        host="127.0.0.1",
        port=args.port,
        # httptools parses HTTP in C: a COG byte range costs the server 0.29 ms, 0.50 ms
        # with uvicorn's pure-Python h11 (a cold COG read makes three requests per file)
        http="httptools",
        timeout_graceful_shutdown=3,
    )


if __name__ == "__main__":
    main()
