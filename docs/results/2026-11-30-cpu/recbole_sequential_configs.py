"""RecBole 1.2.1's TestSequentialRecommender configurations (tests/model/test_model_auto.py at tag
v1.2.1, copied below) through the plugin's objective_function on tests/data/tiny (1 epoch, CPU).

    .venv/bin/python docs/results/2026-11-30-cpu/recbole_sequential_configs.py [test_name ...]

Two settings that RecBole's own test data does not need: the feature models read
selected_features [title] (tiny has no 'class' column), the CPR models reranker_CAN_NUM 20 (their
default 100 exceeds tiny's 40 items). Prints PASS / FAIL per configuration.
"""

import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CONFIGS = [
    ('test_din', {'model': 'DIN'}),
    ('test_dien', {'model': 'DIEN'}),
    ('test_fpmc', {'model': 'FPMC'}),
    ('test_gru4rec', {'model': 'GRU4Rec', 'train_neg_sample_args': None}),
    ('test_gru4reccpr', {'model': 'GRU4RecCPR', 'train_neg_sample_args': None}),
    ('test_gru4rec_with_BPR_loss', {'model': 'GRU4Rec', 'loss_type': 'BPR'}),
    ('test_narm', {'model': 'NARM', 'train_neg_sample_args': None}),
    ('test_narm_with_BPR_loss', {'model': 'NARM', 'loss_type': 'BPR'}),
    ('test_stamp', {'model': 'STAMP', 'train_neg_sample_args': None}),
    ('test_stamp_with_BPR_loss', {'model': 'STAMP', 'loss_type': 'BPR'}),
    ('test_caser', {'model': 'Caser', 'MAX_ITEM_LIST_LENGTH': 10, 'reproducibility': False, 'train_neg_sample_args': None}),
    ('test_caser_with_BPR_loss', {'model': 'Caser', 'loss_type': 'BPR', 'MAX_ITEM_LIST_LENGTH': 10, 'reproducibility': False}),
    ('test_nextitnet', {'model': 'NextItNet', 'reproducibility': False, 'train_neg_sample_args': None}),
    ('test_nextitnet_with_BPR_loss', {'model': 'NextItNet', 'loss_type': 'BPR', 'reproducibility': False}),
    ('test_transrec', {'model': 'TransRec'}),
    ('test_sasrec', {'model': 'SASRec', 'train_neg_sample_args': None}),
    ('test_sasreccpr', {'model': 'SASRecCPR', 'train_neg_sample_args': None}),
    ('test_sasrec_with_BPR_loss_and_relu', {'model': 'SASRec', 'loss_type': 'BPR', 'hidden_act': 'relu'}),
    ('test_sasrec_with_BPR_loss_and_sigmoid', {'model': 'SASRec', 'loss_type': 'BPR', 'hidden_act': 'sigmoid'}),
    ('test_srgnn', {'model': 'SRGNN', 'MAX_ITEM_LIST_LENGTH': 3, 'train_neg_sample_args': None}),
    ('test_srgnn_with_BPR_loss', {'model': 'SRGNN', 'loss_type': 'BPR', 'MAX_ITEM_LIST_LENGTH': 3}),
    ('test_gcsan', {'model': 'GCSAN', 'MAX_ITEM_LIST_LENGTH': 3, 'train_neg_sample_args': None}),
    ('test_gcsan_with_BPR_loss_and_tanh', {'model': 'GCSAN', 'loss_type': 'BPR', 'hidden_act': 'tanh', 'MAX_ITEM_LIST_LENGTH': 3}),
    ('test_gru4recf', {'model': 'GRU4RecF', 'train_neg_sample_args': None}),
    ('test_gru4recf_with_max_pooling', {'model': 'GRU4RecF', 'pooling_mode': 'max', 'train_neg_sample_args': None}),
    ('test_gru4recf_with_sum_pooling', {'model': 'GRU4RecF', 'pooling_mode': 'sum', 'train_neg_sample_args': None}),
    ('test_sasrecf', {'model': 'SASRecF', 'train_neg_sample_args': None}),
    ('test_sasrecf_with_max_pooling', {'model': 'SASRecF', 'pooling_mode': 'max', 'train_neg_sample_args': None}),
    ('test_sasrecf_with_sum_pooling', {'model': 'SASRecF', 'pooling_mode': 'sum', 'train_neg_sample_args': None}),
    ('test_hrm', {'model': 'HRM', 'train_neg_sample_args': None}),
    ('test_hrm_with_BPR_loss', {'model': 'HRM', 'loss_type': 'BPR'}),
    ('test_npe', {'model': 'NPE', 'train_neg_sample_args': None}),
    ('test_npe_with_BPR_loss', {'model': 'NPE', 'loss_type': 'BPR'}),
    ('test_shan', {'model': 'SHAN', 'train_neg_sample_args': None, 'transform': 'inverse_itemseq'}),
    ('test_shan_with_BPR_loss', {'model': 'SHAN', 'loss_type': 'BPR', 'transform': 'inverse_itemseq'}),
    ('test_hgn', {'model': 'HGN', 'train_neg_sample_args': None}),
    ('test_hgn_with_BPR_loss', {'model': 'HGN', 'loss_type': 'BPR'}),
    ('test_fossil', {'model': 'FOSSIL', 'train_neg_sample_args': None}),
    ('test_repeat_net', {'model': 'RepeatNet'}),
    ('test_fdsa', {'model': 'FDSA', 'train_neg_sample_args': None}),
    ('test_fdsa_with_max_pooling', {'model': 'FDSA', 'pooling_mode': 'max', 'train_neg_sample_args': None}),
    ('test_fdsa_with_sum_pooling', {'model': 'FDSA', 'pooling_mode': 'sum', 'train_neg_sample_args': None}),
    ('test_bert4rec', {'model': 'BERT4Rec', 'train_neg_sample_args': None, 'transform': 'mask_itemseq'}),
    ('test_bert4rec_with_BPR_loss_and_swish', {'model': 'BERT4Rec', 'loss_type': 'BPR', 'hidden_act': 'swish', 'transform': 'mask_itemseq'}),
    ('test_lightsans', {'model': 'LightSANs', 'train_neg_sample_args': None}),
    ('test_lightsans_with_BPR_loss', {'model': 'LightSANs', 'loss_type': 'BPR'}),
    ('test_sine', {'model': 'SINE', 'train_neg_sample_args': None}),
    ('test_sine_with_BPR_loss', {'model': 'SINE', 'loss_type': 'BPR'}),
    ('test_sine_with_NLL_loss', {'model': 'SINE', 'train_neg_sample_args': None, 'loss_type': 'NLL'}),
    ('test_core_trm', {'model': 'CORE', 'train_neg_sample_args': None, 'dnn_type': 'trm'}),
    ('test_core_ave', {'model': 'CORE', 'train_neg_sample_args': None, 'dnn_type': 'ave'}),
    ('test_fea_rec', {'model': 'FEARec', 'train_neg_sample_args': None}),
]
FAST = dict(epochs=1, train_batch_size=64, eval_batch_size=64, show_progress=False, state="ERROR", gpu_id="",
            data_path="dataset", dataset="tiny")


def main(only):
    sys.path.insert(0, REPO)
    os.chdir(tempfile.mkdtemp())
    shutil.copytree(os.path.join(REPO, "tests", "data", "tiny"), "dataset/tiny")
    from recbole_speeder.quick_start import objective_function

    passed = failed = 0
    for name, config in CONFIGS:
        if only and name not in only:
            continue
        extra = {}
        if config["model"] in ("GRU4RecF", "SASRecF", "FDSA"):
            extra["selected_features"] = ["title"]
        if config["model"].endswith("CPR"):
            extra["reranker_CAN_NUM"] = 20
        start = time.time()
        try:
            result = objective_function(config_dict=dict(FAST, **config, **extra), saved=False)
            print(f"PASS {name} {time.time() - start:.1f}s vhr@1={result['candidate_test']['vhr@1']}",
                  flush=True)
            passed += 1
        except Exception as err:  # noqa: BLE001 (report and go on)
            print(f"FAIL {name}: {type(err).__name__}: {err}", flush=True)
            failed += 1
    print(passed, "passed", failed, "failed")


if __name__ == "__main__":
    main(sys.argv[1:])
