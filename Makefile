# The two commands of the README: `make demo` and `make test`. Both set up whatever is missing first.
.PHONY: demo test setup lint bench reproduce

setup:
	@./tools/bootstrap.sh

demo: setup
	@./tools/in_env.sh ./tools/demo.sh

test: setup
	@./tools/in_env.sh ./tools/test.sh

lint: setup
	@./tools/in_env.sh ./tools/test.sh --lint-only

# Figure 3(c) of the paper in simulation (about 12 minutes on 2 cores): out/reproduce/{figure_3c.png,results.md}
reproduce: setup
	@./tools/in_env.sh python3 -m plas_ros.reproduce --out out/reproduce
