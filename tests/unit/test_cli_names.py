"""The measured file is a calibration (`edgetrain calibrate`, `--calibration`); the old names
(`edgetrain profile`, `--profile`) still work and mean the same."""

from conftest import TINY, TINY_CALIBRATION, run_cli


def test_the_old_command_name_is_the_calibrate_command():
    new, old = run_cli("calibrate", "--help"), run_cli("profile", "--help")
    assert new.returncode == old.returncode == 0
    assert "calibration JSON to write" in new.stdout and "calibration JSON to write" in old.stdout


def test_predict_reads_a_calibration_under_either_flag():
    args = ("--scenario", TINY, "--plan", "pp:a,b,c")
    new = run_cli("predict", "--calibration", TINY_CALIBRATION, *args)
    old = run_cli("predict", "--profile", TINY_CALIBRATION, *args)
    assert new.returncode == 0, new.stderr
    assert new.stdout == old.stdout and new.stdout.startswith("pp:a,b,c: ")
    not_json = run_cli("predict", "--calibration", TINY, *args)
    assert not_json.returncode == 2 and "calibration" in not_json.stderr and "Traceback" not in not_json.stderr
