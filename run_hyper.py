"""Hyper-parameter search, RecBole style (RecBole's params-file format and HyperTuning).

    python run_hyper.py --model=SASRec --dataset=ml-100k --params_file=hyper.test
    python run_hyper.py --model=Speeder --dataset=ml-100k --params_file=speeder.hyper --algo=random --max_evals=8 \
        --config_files=recbole_speeder/properties/recipes/ml-100k-gpu.yaml

A params file holds one parameter a line: ``learning_rate loguniform -8,0``,
``hidden_size choice [32,64]``, ``dropout_prob uniform 0.1,0.5``, ``train_batch_size quniform 64,512,64``.
Writes the best parameters and a table of the trials to --output_file (default
hyper-<model>-<dataset>.result). Any other --key=value is a fixed property of every trial.
"""

from recbole_speeder.cli import config_file_list, friendly_errors, parse_overrides, run_parser


@friendly_errors
def main(argv=None):
    parser = run_parser(__doc__, config_files_help="space-separated YAML files for every trial")
    parser.add_argument("--params_file", required=True, help="the search space, RecBole's format")
    parser.add_argument("--output_file", default=None, help="result file (default hyper-<model>-<dataset>.result)")
    parser.add_argument("--algo", default="exhaustive", help="exhaustive (every choice combination), random or bayes")
    parser.add_argument("--max_evals", type=int, default=100, help="trials of random / bayes (default 100)")
    parser.add_argument("--early_stop", type=int, default=10, help="trials without progress that end the search")
    parser.add_argument("--seed", type=int, default=2020, help="seed of the search's draws (default 2020)")
    args, rest = parser.parse_known_args(argv)
    from recbole_speeder.hyper import hyper_search

    best, score, path = hyper_search(
        args.model, args.dataset, args.params_file, config_file_list=config_file_list(args.config_files), overrides=parse_overrides(rest),
        output_file=args.output_file, algo=args.algo, max_evals=args.max_evals, early_stop=args.early_stop,
        seed=args.seed,
    )
    print(f"best params: {best}")
    print(f"best valid score: {score}")
    print(f"trials: {path}")


if __name__ == "__main__":
    main()
