"""What every command does around its recipe: parse (or print --help), load plugins, log, turn user errors into one
`error:` line with exit code 2."""
import logging
from typing import Callable, List

import typer

from ..arguments import COMMAND_SECTIONS, RunArgs, help_text, parse_command
from ..errors import PrefswiftError
from ..registry.hub_client import use_cache_first
from ..registry.plugins import load_plugins

NOISY_LOGGERS = ("httpx", "urllib3", "modelscope", "datasets", "filelock")
# warnings some packages log when they are imported, before any handler exists (Python then prints them raw):
# bitsandbytes' CPU backend looks for an optional `kernels` package on every import
IMPORT_NOISE = {"bitsandbytes": logging.ERROR}
# DeepSpeed (imported by transformers whenever it is installed) says on every CPU run that it found no GPU; its logger
# resets its own level when created, so a filter drops that one message
IMPORT_NOISE_MESSAGES = {"DeepSpeed": ("Setting accelerator to CPU",)}


class DropMessages(logging.Filter):
    def __init__(self, needles):
        super().__init__()
        self.needles = tuple(needles)

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(n in record.getMessage() for n in self.needles)


def silence_import_noise() -> None:
    for name, level in IMPORT_NOISE.items():
        logging.getLogger(name).setLevel(level)
    for name, needles in IMPORT_NOISE_MESSAGES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropMessages) for f in logger.filters):
            logger.addFilter(DropMessages(needles))


class ConsoleFormatter(logging.Formatter):
    """One warning style for every source: `[prefswift] warning: ...` (a library's own logger named after the colon);
    information lines keep `[INFO:name]`."""

    def format(self, record: logging.LogRecord) -> str:
        if record.levelno < logging.WARNING:
            return f"[INFO:{record.name}] {record.getMessage()}"
        level = "warning" if record.levelno == logging.WARNING else "error"
        source = "" if record.name == "prefswift" or record.name.startswith("prefswift.") else f"{record.name}: "
        return f"[prefswift] {level}: {source}{record.getMessage()}"


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO)
    for handler in logging.getLogger().handlers:
        if type(handler) is logging.StreamHandler:  # the console handler basicConfig made (not a test's capture)
            handler.setFormatter(ConsoleFormatter())
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)


def parse_or_help(command: str, argv: List[str]) -> RunArgs:
    """The command's arguments, with plugins loaded (they may register the model type named); `--help` prints the
    command's options and exits."""
    if "--help" in argv or "-h" in argv:
        typer.echo(f"usage: prefswift {command} [--option value ...] [--config file.yaml]")
        typer.echo(help_text(COMMAND_SECTIONS[command], command))
        raise typer.Exit(0)
    args = parse_command(command, argv)
    if args.model is not None:  # `web` has no model arguments
        load_plugins(args.model.custom_register_path)
        use_cache_first(not args.model.check_model_is_latest)
    return args


def run_user_command(fn: Callable[[], None]) -> None:
    """Run `fn`; a PrefswiftError (bad arguments, data, model) becomes `error: <one line>` and exit code 2."""
    try:
        fn()
    except PrefswiftError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2)


def run_command(command: str, argv: List[str], body: Callable[[RunArgs], None]) -> None:
    """Parse `command`'s options, set up logging, run `body(args)`, with user errors as one line."""
    def go():
        args = parse_or_help(command, list(argv))
        setup_logging()
        body(args)

    run_user_command(go)
