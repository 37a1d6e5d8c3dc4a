# The README's two commands: `make demo` (the main job on the local lab) and `make test`.
# Each sets itself up on a fresh machine through scripts/bootstrap.sh.
.PHONY: demo test fast lint bench clean

demo:
	@scripts/bootstrap.sh
	.venv/bin/checker demo

# Two workers: every lab test on one (in order, one lab at a time: the `lab` xdist group, set in
# tests/conftest.py), the tests that need no server on the other.
test:
	@scripts/bootstrap.sh
	.venv/bin/python -m pytest -q -n 2 --dist loadgroup

fast:
	@scripts/bootstrap.sh
	.venv/bin/python -m pytest -q -m "not lab" -n 2

lint:
	@scripts/bootstrap.sh
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

bench:
	@scripts/bootstrap.sh
	.venv/bin/python -m bench

clean:
	-.venv/bin/checker lab down --dir .lab/demo --purge
	rm -rf .venv .lab
