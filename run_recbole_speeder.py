"""Train and evaluate one model on one dataset, RecBole style.

    python run_recbole_speeder.py --model=SASRec --dataset=ml-100k --epochs=50
    python run_recbole_speeder.py --model=Speeder --dataset=Automotive --config_files="my.yaml"
    python run_recbole_speeder.py --model=SASRec --dataset=ml-100k --checkpoint=saved/SASRec-....pth

Any other ``--key=value`` overrides a property (see recbole_speeder/properties/).
"""

from recbole_speeder.cli import config_file_list, friendly_errors, parse_overrides, run_parser


@friendly_errors
def main(argv=None):
    parser = run_parser(__doc__)
    parser.add_argument("--resume", default=None, help="checkpoint to resume training from")
    parser.add_argument("--checkpoint", default=None, help="evaluate this saved model without training")
    args, rest = parser.parse_known_args(argv)
    from recbole_speeder.quick_start import run

    run(
        model=args.model,
        dataset=args.dataset,
        config_file_list=config_file_list(args.config_files),
        config_dict=parse_overrides(rest),
        resume_file=args.resume,
        model_file=args.checkpoint,
    )


if __name__ == "__main__":
    main()
