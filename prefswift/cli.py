"""The `prefswift` command line: each subcommand hands its raw options to its recipe in `prefswift.commands`.

Options are parsed there by `prefswift.arguments` (one dataclass tree, the single source of truth).
"""
import sys

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True, rich_markup_mode=None,
                  help="Align LLMs with human preferences: SFT first, then ORPO, DPO, SimPO, CPO, KTO; reward models "
                       "(rm); then merge, chat, evaluate; lint data.")
PASSTHROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def precheck(command: str, argv) -> None:
    """--help and argument errors answer before any heavy library loads (well under a second, unless a plugin file
    imports one): the options are parsed here once, with the plugins loaded (`load_cli_plugins`)."""
    from .commands.common import parse_or_help, run_user_command
    from .arguments import parse_command

    if "--help" in argv or "-h" in argv:
        run_user_command(lambda: parse_or_help(command, argv))
    run_user_command(lambda: parse_command(command, argv))


def _train_command(algo: str, summary: str):
    @app.command(algo, context_settings=PASSTHROUGH, help=f"{summary} Options: `prefswift {algo} --help`.")
    def cmd(ctx: typer.Context):
        precheck(algo, list(ctx.args))
        from .commands import train  # torch, transformers, peft: only once the arguments are known to be good

        train.main(algo, list(ctx.args))

    return cmd


_TRAIN_COMMANDS = set()


def add_train_commands() -> None:
    """`prefswift <algo>` for every registered algorithm (the built-ins, and those plugins registered)."""
    from .arguments.algorithms import algorithm_names, get_spec

    for algo in algorithm_names():
        if algo not in _TRAIN_COMMANDS:
            _TRAIN_COMMANDS.add(algo)
            _train_command(algo, get_spec(algo).summary)


def option_value(argv, name: str) -> str:
    """The value of --name (or its dashed spelling) on the command line, if any."""
    for i, tok in enumerate(argv):
        key, eq, value = tok.partition("=")
        if key in (f"--{name}", f"--{name.replace('_', '-')}"):
            if eq:
                return value
            return argv[i + 1] if i + 1 < len(argv) else ""
    return ""


def plugin_path(argv) -> str:
    """The value of --custom_register_path (or --custom-register-path) on the command line, if any."""
    return option_value(argv, "custom_register_path")


def resumed_run_plugin(argv) -> str:
    """A resume that does not repeat --custom_register_path: the plugin the run's args.json names, so its loss type
    or algorithm is known when the command line (`--loss_type my_sigmoid`) is parsed."""
    resume = option_value(argv, "resume_from_checkpoint")
    if not resume:
        return ""
    from .arguments.fields import TrainArguments
    from .run.directory import resumed_plugin

    output_dir = option_value(argv, "output_dir") or TrainArguments.output_dir
    return resumed_plugin(output_dir, resume) or ""


def load_cli_plugins(argv) -> None:
    """Plugins first (entry points, and the file --custom_register_path names, or the one a resumed run was trained
    with): they may register algorithms (subcommands of their own) and loss types before the command line is
    dispatched and parsed."""
    from .commands.common import run_user_command
    from .registry.plugins import load_plugins

    run_user_command(lambda: load_plugins(plugin_path(argv) or resumed_run_plugin(argv) or None))


add_train_commands()


@app.command("list", help="List registered models, templates or datasets.")
def list_cmd(what: str = typer.Argument(..., help="models | templates | datasets"),
             word: str = typer.Argument(None, help="Only the rows that contain this word (any column)."),
             family: str = typer.Option(None, help="models: only this family (e.g. gemma2, qwen2.5)."),
             custom_register_path: str = typer.Option(None, help="A Python file that registers models/templates/"
                                                                 "datasets (listed too).")):
    from .commands import list as list_command

    list_command.main(what, custom_register_path, word=word, family=family)


# The commands that take their options raw (parsed by prefswift.arguments): (name, module in prefswift.commands, help).
PASSTHROUGH_COMMANDS = (
    ("preview", "preview",
     "Show exactly what training sees: rendered pairs, trained tokens, counts (--json for ids)."),
    ("merge-lora", "merge",
     "Merge a LoRA checkpoint into its base: --ckpt_dir X [--output_dir Y] (default X-merged)."),
    ("export", "export",
     "A trained model for local runtimes: --to gguf (--outtype f16|bf16|f32|q8_0|q4_0|q5_0, adapters "
     "merged, training chat template in the metadata), ollama (+ Modelfile), gguf-lora (the adapter "
     "alone), or --quant bnb-4bit|bnb-8bit safetensors."),
    ("infer", "infer",
     "Chat with a checkpoint or model (commands exit/quit, clear, reset-system; end a line with \\ to "
     "continue it; stdin from a pipe: one prompt per line, one JSON line out per answer), or answer a "
     "dataset's prompts into infer_result/<time>.jsonl (--dataset / --load_dataset_config true)."),
    ("eval", "eval",
     "Held-out pairs: implicit-reward accuracy against the run's reference, KL estimate, length bias, "
     "log-prob accuracy (--compare_to: side by side); or --mode winrate: answers judged by a model."),
    ("lint", "lint",
     "Check preference data before training: drops (as training counts them), duplicates and near "
     "duplicates, truncation, length bias, prompts and special tokens in answers, scripts per field, "
     "sampled files' K-way groups (identical samples); --strict exits 1 when a check is over its limit."),
    ("web", "web",
     "A page in the browser: runs live (state, curves, args, eval, checkpoints), compare runs, chat "
     "with a run, and an arena whose votes `prefswift dpo --dataset votes.jsonl` trains on "
     "(--runs_dir output; binds 127.0.0.1)."),
    ("sample", "sample",
     "Make preference data: K completions per prompt from a policy, scored by --reward_model or "
     "--judge_model, best vs worst written as a JSONL file dpo/orpo/kto read (--resume true continues "
     "an interrupted run)."),
    ("deploy", "deploy",
     "Serve a checkpoint behind an OpenAI-compatible API (/v1/chat/completions, /v1/completions, "
     "/v1/models, /v1/preference): --ckpt_dir RUN, --adapters NAME=PATH ... on the same base chosen by "
     "`model`; 127.0.0.1:8000 unless --host (which needs --api_key)."),
)


def _passthrough_command(name: str, module: str, help_text: str) -> None:
    @app.command(name, context_settings=PASSTHROUGH, help=help_text)
    def cmd(ctx: typer.Context):
        precheck(name, list(ctx.args))
        import importlib  # the command's module (torch and the rest) only once its arguments are known to be good

        importlib.import_module(f".commands.{module}", __package__).main(list(ctx.args))


for _name, _module, _help in PASSTHROUGH_COMMANDS:
    _passthrough_command(_name, _module, _help)


def main(argv=None):
    from .commands.common import silence_import_noise

    argv = list(argv if argv is not None else sys.argv[1:])
    if argv in (["--version"], ["-V"]):
        from . import __version__

        print(f"prefswift {__version__}")
        return
    silence_import_noise()
    try:
        load_cli_plugins(argv)
    except typer.Exit as done:  # the plugin file's one-line error was printed
        sys.exit(done.exit_code)
    add_train_commands()
    app(args=argv, prog_name="prefswift")


if __name__ == "__main__":
    main()
