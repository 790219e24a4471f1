"""atheris harness for the ``archives`` fuzz target; see atheris_main.py for how to run and replay."""

from atheris_main import run

if __name__ == "__main__":
    run("archives")
