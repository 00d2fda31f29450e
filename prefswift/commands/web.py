"""`prefswift web --runs_dir output`: watch runs live, compare them, chat with them and vote in an arena, in a browser.

Binds 127.0.0.1 unless told otherwise; another address needs --api_key (every API request carries it) or an explicit
--allow_unauthenticated true. The page is prefswift/web/static (no CDN: everything it loads comes from this server).

Steps: parse -> check the address -> read the arena's prompts -> serve until Ctrl-C.
"""
from pathlib import Path
from typing import List

from ..arguments import RunArgs
from ..errors import ArgumentError
from ..serve.server import check_exposure, effective_api_key
from .common import run_command

def main(argv: List[str]) -> None:
    run_command("web", argv, serve)


def web_state(args: RunArgs, log=print):
    """The server's state: the runs folder, the votes file, the arena's prompts (read once, one error line if bad)."""
    from ..web.app import WebState

    w = args.web
    runs_dir = Path(w.runs_dir).expanduser()
    if not runs_dir.is_dir():
        raise ArgumentError(f"--runs_dir {w.runs_dir}: no such folder; give the --output_dir of your runs (or its "
                            "parent)")
    votes = Path(w.votes_file).expanduser() if w.votes_file else runs_dir / "arena" / "votes.jsonl"
    if votes.exists() and not votes.is_file():
        raise ArgumentError(f"--votes_file {votes}: is a folder; give a .jsonl file path")
    prompts: List[str] = []
    if w.prompt_file:
        from ..arguments.fields import DataArguments
        from ..data.prompts import collect_prompts

        found = collect_prompts(DataArguments(dataset=[w.prompt_file]), log=log)
        prompts = [item.prompt for item in found.items]
        log(f"[prefswift] arena: {len(prompts)} prompts from {w.prompt_file}")
    return WebState(runs_dir, votes, prompts, effective_api_key(args.deploy.api_key))


def serve(args: RunArgs, log=print) -> None:
    import uvicorn

    from ..web.app import create_app

    d = args.deploy  # where it listens: deploy's --host --port --api_key --allow_unauthenticated
    check_exposure(d.host, effective_api_key(d.api_key), d.allow_unauthenticated)
    state = web_state(args, log)
    shown = f"[{d.host}]" if ":" in d.host else d.host
    log(f"[prefswift] web: http://{shown}:{d.port}/  (runs under {state.runs_dir}; votes go to {state.votes.path})")
    try:
        uvicorn.run(create_app(state), host=d.host, port=d.port, log_level="warning")
    finally:
        state.models.shutdown()


__all__ = ["main", "serve", "web_state"]
