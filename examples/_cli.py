"""The command line of the examples: a new run, `--resume` or `--evaluate`, and the run folder.

`parse(parser, argv, default_out)` parses the options and returns `(cfg, history)`:

- a new run refuses an `--out` that holds a run already, unless `--overwrite` (which
  removes that run's files first);
- `--resume` continues the run in `--out` with its saved settings: it prints them, and
  refuses an option given on the command line whose value differs from the saved one
  (only the `RUN_SETTINGS` may change);
- `--evaluate PATH` takes the settings saved with the model in PATH, with the same rule.
"""

import argparse
import json
import sys
from pathlib import Path

RUN_SETTINGS = (
    "epochs",
    "out",
    "resume",
    "overwrite",
    "evaluate",
    "stop_at",
    "no_plots",
    "no_progress",
    "devices",
)
"""Options that may differ from the saved settings on --resume and --evaluate."""

RUN_FILES = (
    "checkpoint.json",
    "checkpoint.eqx",
    "history.json",
    "model-best.eqx",
    "model-last.eqx",
)
"""The files of a run in its --out folder (the plots are overwritten as they are drawn)."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """--help keeps the docstring's layout and shows the default of every option that has
    one (an option without, or a flag, says in its help what happens if it is not given)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def new_parser(doc: str) -> argparse.ArgumentParser:
    """A parser for an example whose module docstring is `doc` (no abbreviated options: an
    option is "given" only when spelled out, which --resume relies on)."""
    return argparse.ArgumentParser(
        description=doc, formatter_class=HelpFormatter, allow_abbrev=False
    )


def given_options(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The `dest` of every option spelled out in `argv` (`--lr 0.1` or `--lr=0.1`)."""
    given = set()
    for action in parser._actions:
        for option in action.option_strings:
            if any(arg == option or arg.startswith(option + "=") for arg in argv):
                given.add(action.dest)
    return given


def settings(cfg: argparse.Namespace) -> dict:
    """The options of `cfg` as JSON values (paths as strings)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def merge_saved(cfg, given: set[str], saved: dict, source: str, mode: str) -> argparse.Namespace:
    """`cfg` with the `saved` settings, except the RUN_SETTINGS of this command.

    **Raises:** `SystemExit` naming both values if an option given on the command line
    (other than the RUN_SETTINGS) differs from the saved one.
    """
    ours = settings(cfg)
    conflicts = [
        f"{flag(name)} {_show(ours[name])} (the run used {_show(saved[name])})"
        for name in sorted(given - set(RUN_SETTINGS))
        if name in saved and json.loads(json.dumps(ours[name])) != saved[name]
    ]
    if conflicts:
        hint = (
            "Drop these options, or start a new run (another --out) to change them."
            if mode == "--resume"
            else "Drop these options: the model is tested on the test set of its own run."
        )
        raise SystemExit(
            f"{mode}: {'; '.join(conflicts)}: {mode} keeps the settings saved in {source}. {hint}"
        )
    merged = {**vars(cfg), **{k: v for k, v in saved.items() if k not in RUN_SETTINGS}}
    return argparse.Namespace(**merged)


def _show(value) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)


def describe_kept(cfg, saved: dict, source: str, changeable: bool = True) -> str:
    """Which saved settings differ from the defaults of this command (the rest agree)."""
    ours = settings(cfg)
    differ = [
        f"{name}={_show(value)}"
        for name, value in saved.items()
        if name not in RUN_SETTINGS and name in ours and json.loads(json.dumps(ours[name])) != value
    ]
    kept = len([name for name in saved if name not in RUN_SETTINGS])
    return (
        f"keeps the {kept} settings saved in {source}"
        + (f"; not this command's defaults: {', '.join(differ)}" if differ else "")
        + (f"; may change: {', '.join(flag(n) for n in RUN_SETTINGS)}" if changeable else "")
    )


def parse(parser: argparse.ArgumentParser, argv, default_out, example: str):
    """Parse `argv` and prepare the run: `(cfg, history so far)`; see the module docstring.

    `default_out(cfg)` is the run folder when --out is not given; `example` is the script's
    name (`yinyang`), recorded with the saved models and checked by --evaluate.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    cfg = parser.parse_args(argv)
    cfg.example = example
    given = given_options(parser, argv)
    if cfg.out is None:
        cfg.out = default_out(cfg)
    if cfg.resume and (cfg.overwrite or cfg.evaluate is not None):
        other = "--overwrite" if cfg.overwrite else "--evaluate"
        raise SystemExit(
            f"--resume continues the run in --out; it cannot be combined with {other}."
        )
    if cfg.evaluate is not None:
        return evaluation_settings(cfg, given), []
    if cfg.resume:
        return resume(cfg, given)
    existing = [name for name in RUN_FILES if (cfg.out / name).exists()]
    if existing and not cfg.overwrite:
        raise SystemExit(
            f"{cfg.out} holds a run already ({', '.join(existing)}): add --resume to continue "
            "it, --overwrite to replace it, or choose another --out."
        )
    for name in existing:
        (cfg.out / name).unlink()
    return cfg, []


def resume(cfg: argparse.Namespace, given: set[str]) -> tuple[argparse.Namespace, list]:
    """The settings and history of the run in `cfg.out`, for --resume."""
    path = cfg.out / "checkpoint.json"
    if not path.exists():
        raise SystemExit(f"--resume: no checkpoint in {cfg.out} (expected {path}).")
    info = json.loads(path.read_text())
    saved = info["config"]
    merged = merge_saved(cfg, given, saved, str(path), "--resume")
    merged.out = Path(merged.out)
    print(
        f"--resume: continuing after epoch {info['epoch']};", describe_kept(cfg, saved, str(path))
    )
    return merged, info["history"]


def evaluation_settings(cfg: argparse.Namespace, given: set[str]) -> argparse.Namespace:
    """For --evaluate: `cfg` with the settings saved with the model in `cfg.evaluate`."""
    from eqsnn import training

    try:
        hyper = training.load_hyperparameters(cfg.evaluate)
    except (OSError, ValueError) as error:
        raise SystemExit(f"--evaluate: {error}") from None
    if "settings" not in hyper:
        raise SystemExit(
            f"--evaluate: {cfg.evaluate} has no example settings in its hyperparameters (it was "
            "not saved by an example script); load it with eqsnn.training.load instead."
        )
    if hyper["settings"].get("example") != cfg.example:
        raise SystemExit(
            f"--evaluate: {cfg.evaluate} was saved by examples/"
            f"{hyper['settings'].get('example')}.py; evaluate it with that script."
        )
    source = f"{cfg.evaluate} (the model's hyperparameters)"
    merged = merge_saved(cfg, given, hyper["settings"], source, "--evaluate")
    merged.out = Path(merged.out)
    print(f"--evaluate: {describe_kept(cfg, hyper['settings'], source, changeable=False)}")
    return merged
