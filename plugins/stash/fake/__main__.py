"""``python -m sluiced.plugins.stash.fake``: serve a generated library on 127.0.0.1."""

from __future__ import annotations

import argparse
import contextlib
import sys

import trio

from .library import generate


def main(argv: list[str] | None = None) -> int:
    try:
        from .server import FakeStash, Faults
    except ImportError as error:
        if error.name != "graphql":
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    p = argparse.ArgumentParser(
        prog="python -m sluiced.plugins.stash.fake",
        description="Serve a generated Stash library on 127.0.0.1 (a fake Stash).",
    )
    p.add_argument("--port", type=int, default=9999)
    p.add_argument("--scenes", type=int, default=500)
    p.add_argument("--performers", type=int, default=100)
    p.add_argument("--tags", type=int, default=60)
    p.add_argument("--studios", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--tz", default="UTC", help="the server's time zone: UTC, -08:00 or America/Los_Angeles"
    )
    p.add_argument("--api-key-file", help="require this API key (ApiKey header)")
    p.add_argument("--faults", type=float, default=0.0, help="share of requests that fail (0..1)")
    args = p.parse_args(argv)
    key = None
    if args.api_key_file:
        with open(args.api_key_file) as f:
            key = f.read().strip()
    library = generate(
        performers=args.performers,
        tags=args.tags,
        studios=args.studios,
        scenes=args.scenes,
        seed=args.seed,
        tz=args.tz,
    )
    stash = FakeStash(library, api_key=key, faults=Faults(rate=args.faults), port=args.port)
    print(
        f"fake Stash on {stash.url}/graphql: {args.scenes} scenes, {args.performers} performers, "
        f"{args.tags} tags, {args.studios} studios (Ctrl-C stops it)",
        flush=True,
    )
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(stash.serve)
    return 0


if __name__ == "__main__":
    sys.exit(main())
