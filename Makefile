# The course's two commands: `make lab` (start the course) and `make test` (run every check).
# Both build what they need: the virtual environment and the Jupyter kernel. Students work in work/,
# copies of notebooks/ that no command overwrites once changed (course_lib/workspace.py).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
HOST   ?= 127.0.0.1
PORT   ?= 8888
TOKEN  ?= $(shell $(PYTHON) -c "import secrets; print(secrets.token_hex(16))")
KERNEL := tf-course
# pytest workers: the notebook and server tests are independent; 2 cores on CI.
WORKERS ?= 2
STAMP  := $(VENV)/.course-installed
# Every command acts on the checkout make runs in (its notebooks/, work/, solutions/), whichever venv.
export COURSE_ROOT := $(CURDIR)

# Instructors: a course directory outside the repository (docs/instructor.md).
COURSE_DIR ?= $(HOME)/tf-course-grading
SOURCES    ?= $(CURDIR)/solutions
CLASSROOM   = $(PY) -m course_lib.dev.classroom --course $(COURSE_DIR) --sources $(SOURCES)

.PHONY: help venv kernel notebooks lab fresh test lint strip refresh lock doctor clean mutants \
        course generate grade feedback grades formgrader progress gpu-report binder-check binder-badge currency \
        hub

# GPU CI and lab VMs: every notebook with QUICK=False plus the measured report (DRY_RUN=1: CPU sizes).
REPORT_DIR ?= results/$(shell date -u +%Y%m%d-%H%M)

help:
	@echo "make lab    start JupyterLab on http://$(HOST):$(PORT) (PORT=, HOST=, TOKEN= to override)"
	@echo "make test   build the environment and run the whole test suite"
	@echo "make test-fast   ruff and the tests not marked slow (under 3 minutes)"
	@echo "make fresh NB=03  students: a fresh copy of a notebook beside yours in work/"
	@echo "make progress   students: your visible-test points per exercise"
	@echo "make notebooks  authors: regenerate notebooks/ from solutions/ (nbgrader generate_assignment)"
	@echo "make course | generate | grade ASSIGNMENT=.. [SUBMISSIONS=..] | feedback ASSIGNMENT=.. | grades | formgrader"
	@echo "make gpu-report [DRY_RUN=1] [REPORT_DIR=results/...]   measured performance report"
	@echo "make binder-check [NOTEBOOKS=..] [OUT=..]   every notebook under Binder's 2 GB / 1 CPU (root: a cgroup)"
	@echo "make binder-badge   point the README's Binder badge at this repository's GitHub remote"
	@echo "make currency [CURRENCY_OUT=results/...]   every notebook and the suite on the newest TensorFlow and Keras"
	@echo "make mutants   authors: how many wrong answers the graded tests catch (docs/mutation-scores.json)"
	@echo "make hub [ROSTER=..] [HUB_STATE=..] [HUB_PORT=8000]   root: JupyterHub for a class on 127.0.0.1 (docs/hub.md)"
	@echo "make lint | strip | refresh NB=... | doctor | lock | clean"

$(STAMP): requirements.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt
	# jupyter-events asks for jsonschema[format-nongpl], whose rfc3987-syntax builds a Lark grammar at
	# import: 2.4 s of CPU in every process that imports jsonschema (each nbgrader and Jupyter command).
	# No schema the course uses checks IRI formats, so it goes (jsonschema works without it).
	$(PY) -m pip uninstall --quiet --yes rfc3987-syntax
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python 3 (TF course)" >/dev/null
	$(PY) -m course_lib.dev.kernel_limits install >/dev/null
	touch $(STAMP)

venv: $(STAMP)

kernel: $(STAMP)

# Authors only: students get notebooks/ from git. Never replaces a file edited by hand there.
notebooks: $(STAMP)
	$(PY) -m course_lib.dev.generate

# Nothing is generated here: work/ is synced (never over your changes) and JupyterLab starts.
lab: $(STAMP)
	$(PY) -m course_lib lab --root $(CURDIR) --host $(HOST) --port $(PORT) --token $(TOKEN)

fresh: $(STAMP)
	@test -n "$(NB)" || (echo "usage: make fresh NB=<number or folder, e.g. 03>"; exit 2)
	$(PY) -m course_lib fresh --course-root $(CURDIR) $(NB)

# The notebooks that measure memory or speed on the CPU; with the tests marked cpu_sensitive, `make test`
# runs them a second time with oneDNN forced off, as TF 2.21 runs on every CPU without AVX-512 (most
# students' laptops: no CPU allocator statistics, Eigen kernels), whatever the CPU of the machine testing.
# On a CPU where oneDNN is already off (no AVX-512), the first runs were that case and the second is skipped.
CPU_SENSITIVE_NOTEBOOKS := solutions/05-inference solutions/09-performance solutions/10-resource-estimation

# An explicit --basetemp: pytest never prunes it, so no other pytest run on the machine (the nested
# ones in tests/ included) can delete the course directories of a running test.
# --dist loadscope is not xdist's own here: tests/conftest.py's CourseScheduling takes it (and -n's default,
# load) over, one worker per test module and one per notebook round trip, because xdist_group marks are
# ignored under pytest 9.2 (pytest-xdist#1386). Its docstring says when it can go.
test: lint
	$(PY) -m course_lib.dev.notebooks check
	tmp=$$(mktemp -d /tmp/course-tests-XXXXXX) && \
	$(VENV)/bin/pytest -n $(WORKERS) --dist loadscope --basetemp=$$tmp/unit --durations=15 \
	    --nbval-lax --nbval-kernel-name $(KERNEL) tests solutions && \
	if ! $(PY) -c "import sys; from course_lib.environment import onednn_enabled; sys.exit(not onednn_enabled())" \
	    2>/dev/null; then \
	  echo "oneDNN is off on this CPU (no AVX-512): the runs above were already the students' case."; \
	else \
	  echo "CPU-sensitive checks again with TF_ENABLE_ONEDNN_OPTS=0 (a CPU without AVX-512):" && \
	  TF_ENABLE_ONEDNN_OPTS=0 $(VENV)/bin/pytest -n $(WORKERS) --dist loadscope -p no:cacheprovider \
	      --basetemp=$$tmp/onednn-off -m cpu_sensitive tests && \
	  TF_ENABLE_ONEDNN_OPTS=0 $(VENV)/bin/pytest -n $(WORKERS) --dist loadscope -p no:cacheprovider \
	      --basetemp=$$tmp/nbval-onednn-off --nbval-lax --nbval-kernel-name $(KERNEL) $(CPU_SENSITIVE_NOTEBOOKS); \
	fi && \
	rm -rf $$tmp

# Developers, between commits: ruff and the tests not marked slow (no notebooks, nbgrader, make, browser
# or model server), in under 3 minutes on 2 cores. `make test` still runs everything.
.PHONY: test-fast
test-fast: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	tmp=$$(mktemp -d /tmp/course-tests-XXXXXX) && \
	$(VENV)/bin/pytest -n $(WORKERS) --dist loadscope --basetemp=$$tmp/unit --durations=10 -m "not slow" tests && \
	rm -rf $$tmp

# Static checks, also the first step of `make test` (and pre-commit's hooks): ruff's rules, ruff's
# formatting, pyright in basic mode ([tool.pyright] in pyproject.toml; no update check against PyPI).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	PYRIGHT_PYTHON_IGNORE_WARNINGS=1 $(VENV)/bin/pyright --project .

strip: $(STAMP)
	$(PY) -m course_lib.dev.notebooks strip

refresh: $(STAMP)
	$(PY) -m course_lib.dev.notebooks refresh $(NB)

doctor: $(STAMP)
	$(PY) -m course_lib doctor

lock: $(STAMP)
	( echo '# Full lock of the environment that `make` builds (pip freeze). Regenerate with `make lock`.'; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^course-lib' ) > constraints.txt

progress: $(STAMP)
	$(PY) -m course_lib progress $(NOTEBOOKS)

course: $(STAMP)
	$(CLASSROOM) setup

generate: course
	$(CLASSROOM) generate $(ASSIGNMENT)

# GRADING_WORKERS: students graded at a time (default: the CPUs this process may use; WORKERS is pytest's).
grade: $(STAMP)
	@test -n "$(ASSIGNMENT)" || (echo "usage: make grade ASSIGNMENT=<id> [SUBMISSIONS=<folder or zip>] [GRADING_WORKERS=N]"; exit 2)
	$(CLASSROOM) grade $(ASSIGNMENT) $(if $(SUBMISSIONS),--from $(SUBMISSIONS),) \
	    $(if $(GRADING_WORKERS),--workers $(GRADING_WORKERS),)

feedback: $(STAMP)
	@test -n "$(ASSIGNMENT)" || (echo "usage: make feedback ASSIGNMENT=<id>"; exit 2)
	$(CLASSROOM) feedback $(ASSIGNMENT)

# nbgrader's export (OUT, default grades.csv in the course directory) and, beside it, grades-canvas.csv and
# grades-moodle.csv; CANVAS_ID=sis-login-id|sis-user-id|id: the Canvas column of nbgrader's student id.
grades: $(STAMP)
	$(CLASSROOM) grades $(if $(OUT),--out $(OUT),) $(if $(CANVAS_ID),--canvas-id $(CANVAS_ID),)

formgrader: course
	cd $(COURSE_DIR) && $(abspath $(PY)) -m course_lib lab --no-workspace --host $(HOST) --port $(PORT) \
	    --token $(TOKEN) --root $(COURSE_DIR) --url /formgrader

# A class on one machine (docs/hub.md): accounts from the roster, then JupyterHub on 127.0.0.1:$(HUB_PORT)
# behind configurable-http-proxy, pinned in deploy/hub/package-lock.json and installed with `npm ci`.
HUB_DIR   := deploy/hub
HUB_PROXY := $(HUB_DIR)/node_modules/.installed
ROSTER    ?= $(HUB_DIR)/roster.example.csv
HUB_STATE ?= $(HUB_DIR)/state
HUB_PORT  ?= 8000

# flock: two `make hub` at once (the test workers) run one `npm ci`; the second finds the stamp newer.
$(HUB_PROXY): $(HUB_DIR)/package.json $(HUB_DIR)/package-lock.json
	cd $(HUB_DIR) && flock . sh -c 'test node_modules/.installed -nt package-lock.json && \
	    test node_modules/.installed -nt package.json || \
	    { npm ci --no-audit --no-fund && touch node_modules/.installed; }'

hub: $(STAMP) $(HUB_PROXY)
	$(PY) -m course_lib.hub --roster $(ROSTER) --state $(HUB_STATE) start --port $(HUB_PORT) \
	    $(if $(PASSWORDS),--passwords $(PASSWORDS),)

gpu-report: $(STAMP)
	$(PY) -m course_lib.dev.gpu_report --out $(REPORT_DIR) $(if $(DRY_RUN),--dry-run,)

# Binder's limits for real: each notebook in a cgroup of 2 GiB and 1 CPU (needs root; IN_PLACE=1
# inside a container that has the limits already, e.g. Binder itself).
binder-check: $(STAMP)
	$(PY) -m course_lib.dev.binder_check $(NOTEBOOKS) $(if $(OUT),--out $(OUT),) $(if $(IN_PLACE),--in-place,)

# After publishing on GitHub: fill the README's Binder badge from `git remote get-url origin`.
binder-badge: $(STAMP)
	$(PY) -m course_lib.dev.binder_badge

# Mutation testing of the graded exercises (issue 16): how many one-slip wrong answers the tests catch,
# per notebook, recorded with which exercises call TensorFlow. A test fails when the record is stale.
mutants: $(STAMP)
	$(PY) -m course_lib.dev.mutants --all --record docs/mutation-scores.json --tables docs/benchmarks.md

# The newest TensorFlow and Keras (release candidates included) in a venv of their own (.currency-venv),
# every notebook and the suite on them: report.md and report.json say what breaks. The pins stay as they are.
CURRENCY_OUT ?= results/currency-$(shell date -u +%Y%m%d)
currency:
	$(PYTHON) -m course_lib.dev.currency --out $(CURRENCY_OUT)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
