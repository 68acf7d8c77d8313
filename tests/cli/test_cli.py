from typer.testing import CliRunner

from semimtr_cli.cli.app import COMMANDS, app

runner = CliRunner()

PRODUCT_COMMANDS = [
    "build-lmdb", "inspect", "show-aug", "synth", "pretrain-vision", "pretrain-lm", "finetune",
    "eval", "calibrate", "pseudo-labels", "read", "convert", "export",
]


def test_help_lists_every_product_command():
    result = runner.invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for name in PRODUCT_COMMANDS:
        assert f" {name} " in result.output, name
    assert {c[0] for c in COMMANDS} >= set(PRODUCT_COMMANDS)


def test_each_command_has_help():
    for name in PRODUCT_COMMANDS:
        result = runner.invoke(app, [name, "--help"], terminal_width=200)
        assert result.exit_code == 0, (name, result.output)
        assert "Usage" in result.output


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("semimtr ")


def test_unknown_command_is_usage_error():
    result = runner.invoke(app, ["no-such-command"])
    assert result.exit_code == 2


def test_shared_options_mean_the_same_on_every_command():
    """--device/--precision/--threads/--workers/--json: one definition (commands/options.py) each."""
    import re

    import typer.main

    from semimtr_cli.cli.commands import options

    helps: dict[str, dict[str, str]] = {}
    for name, cmd in typer.main.get_command(app).commands.items():
        for param in cmd.params:
            for flag in param.opts:
                if not getattr(param, "hidden", False):
                    helps.setdefault(flag, {})[name] = param.help or ""
    assert set(helps["--device"]) >= {"eval", "read", "pseudo-labels", "finetune"}
    assert set(helps["--device"].values()) == {options.DEVICE_HELP}
    assert set(helps["--precision"].values()) == {options.PRECISION_HELP}
    assert {c: h for c, h in helps["--threads"].items() if c != "build-lmdb"}  # build-lmdb: its reading pool
    assert {h for c, h in helps["--threads"].items() if c != "build-lmdb"} == {options.THREADS_HELP}
    for command, text in helps["--workers"].items():
        assert re.fullmatch(r"Worker processes that .+ \(0 = in this process(; default: .+)?\)\.", text), command
    assert set(helps["--json"]) == set(PRODUCT_COMMANDS)
    assert helps["--head"]["read"] == helps["--head"]["pseudo-labels"] and "final (default" in helps["--head"]["eval"]
    for command, text in helps["--json"].items():
        assert re.fullmatch(r"Write .+ as JSON to this file \('-' = stdout\)\.", text), command
