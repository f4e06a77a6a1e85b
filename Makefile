# Two commands: `make run` and `make test`. Everything else is set up on demand.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test index bench eval clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first: the CPU wheel on this machine's disk; otherwise pip pulls a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

index: $(STAMP)
	test -f var/index/CURRENT || $(BIN)/planbot build

run: index
	$(BIN)/python -m bot

test: $(STAMP)
	$(BIN)/python -m pytest -q

eval: index
	$(BIN)/planbot eval data/eval/questions.jsonl --retriever all

bench: index
	$(BIN)/planbot bench --queries 200

clean:
	rm -rf var/index
