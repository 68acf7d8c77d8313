from typer.testing import CliRunner

from semimtr_cli.cli import COMMANDS, app

runner = CliRunner()

PRODUCT_COMMANDS = [
    "build-lmdb", "show-aug", "synth", "pretrain-vision", "pretrain-lm", "finetune",
    "eval", "pseudo-labels", "read", "convert", "export",
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
