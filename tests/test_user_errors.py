"""A user's mistake is one line on stderr that names what is wrong, exit status 2 (130 for Ctrl-C), no
traceback; one bad file of a folder is skipped and listed, never the end of the whole run (issue 25, 17-19)."""

from __future__ import annotations

import csv
import errno
import fcntl
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from mucon.cli import main
from mucon.config import load_config
from mucon.methods import method_class

from conftest import write_tone_folder

TASK_HEADER = "name: genre\ntype: multiclass\nlabel: genre\n"
TASK_ROWS = "path,split,genre\ntone000.wav,train,low\ntone001.wav,train,high\ntone002.wav,test,low\ntone003.wav,test,high\n"


def untrained_checkpoint(folder, preset, *overrides):
    """A mucon checkpoint of a preset's untrained model: the file format, without training."""
    config = load_config(preset, list(overrides))
    path = folder / f"{preset}.ckpt"
    torch.save({"state_dict": method_class(config.method_name)(config).state_dict(),
                "mucon": {"config": config.to_dict(), "label_vocabulary": []}}, path)
    return path


def task_folder(folder, rows=TASK_ROWS, header=TASK_HEADER, encoding="utf-8"):
    """Four tones and a genre task over them; returns the task header's path."""
    write_tone_folder(folder, 4, 16000, 2.0)
    (folder / "genre.csv").write_bytes(rows.encode(encoding))
    (folder / "genre.yaml").write_text(header)
    return folder / "genre.yaml"


def evaluate(tmp_path, checkpoint, task, *options):
    return ["evaluate", "--checkpoint", str(checkpoint), "--tasks", str(task), "--out", str(tmp_path / "report"),
            "--no-robustness", "--no-baselines", "--quiet", *options]


def pretrain(tmp_path, *overrides, config="clmr-cpu", store=None):
    return ["pretrain", "--config", str(config), "--store", str(store or tmp_path / "store"), "--run-dir",
            str(tmp_path / "run"), "data.num_workers=0", "data.batch_size=4", "trainer.max_steps=1",
            "trainer.progress_bar=false", *overrides]


def mtg_jamendo_folder(folder):
    from mucon.data.layouts.mtg_jamendo import HEADER, tsv_names

    folder.mkdir()
    for name in tsv_names():
        (folder / name).write_text("\t".join(HEADER) + "\ntrack_1\tartist_1\talbum_1\n")  # PATH, DURATION, tags lost
    return folder


def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


# --- the cases: (tmp_path, monkeypatch, store) -> (argv, words the one line must hold[, a check after]) ----------


def accumulate_zero(tmp_path, monkeypatch, store):
    return (pretrain(tmp_path, "trainer.accumulate_grad_batches=0", store=store),
            "trainer.accumulate_grad_batches=0: must be >= 1")


def max_time_banana(tmp_path, monkeypatch, store):
    return pretrain(tmp_path, "trainer.max_time=banana", store=store), "trainer.max_time='banana': must be DD:HH:MM:SS"


def config_a_yaml_scalar(tmp_path, monkeypatch, store):
    (tmp_path / "five.yaml").write_text("5\n")
    return pretrain(tmp_path, config=tmp_path / "five.yaml"), "five.yaml: a config is a mapping of sections"


def config_a_yaml_list(tmp_path, monkeypatch, store):
    (tmp_path / "list.yaml").write_text("- method\n- encoder\n")
    return pretrain(tmp_path, config=tmp_path / "list.yaml"), "list.yaml: a config is a mapping of sections"


def override_without_equals(tmp_path, monkeypatch, store):
    return pretrain(tmp_path, "trainer.max_steps"), "is not of the form key.sub=value"


def override_building_a_python_object(tmp_path, monkeypatch, store):
    marker = tmp_path / "ran"
    override = f"seed=!!python/object/apply:os.system ['touch {marker}']"
    return pretrain(tmp_path, override), "the value is not plain YAML", lambda: not marker.exists()


def disk_full_during_a_checkpoint_save(tmp_path, monkeypatch, store):
    def full_disk(checkpoint, handle, *args, **kwargs):
        handle.write(b"the first bytes of a checkpoint")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full_disk)
    checkpoints = tmp_path / "run" / "checkpoints"
    return (pretrain(tmp_path, store=store), "last.ckpt: the disk is full (No space left on device); last.ckpt was not",
            lambda: list(checkpoints.iterdir()) == [])  # no half-written temporary file is left on the full disk


def ctrl_c_in_evaluate(tmp_path, monkeypatch, store):
    import mucon.evaluation.embed

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mucon.evaluation.embed, "load_audio", interrupted)
    task = task_folder(tmp_path / "task")
    return evaluate(tmp_path, untrained_checkpoint(tmp_path, "clmr-cpu"), task), "mucon evaluate: interrupted"


def mtg_jamendo_row_with_too_few_fields(tmp_path, monkeypatch, store):
    folder = mtg_jamendo_folder(tmp_path / "jamendo")
    return (["prepare", str(folder), str(tmp_path / "store"), "--sample-rate", "16000", "--quiet"],
            "autotagging_top50tags-train.tsv, line 2: 3 tab-separated fields")


def task_row_shorter_than_its_header(tmp_path, monkeypatch, store):
    task = task_folder(tmp_path / "task", TASK_ROWS + "tone003.wav,test\n")
    return evaluate(tmp_path, untrained_checkpoint(tmp_path, "clmr-cpu"), task), "genre.csv, line 6: 2 fields"


def broken_task_yaml(tmp_path, monkeypatch, store):
    task = task_folder(tmp_path / "task", header="name: genre\ntype: [multiclass\nlabel: genre\n")
    return evaluate(tmp_path, untrained_checkpoint(tmp_path, "clmr-cpu"), task), "genre.yaml: not a valid task header"


def max_chunks_many(tmp_path, monkeypatch, store):
    task = task_folder(tmp_path / "task", header=TASK_HEADER + "max_chunks: many\n")
    return evaluate(tmp_path, untrained_checkpoint(tmp_path, "clmr-cpu"), task), "max_chunks must be a whole number"


def embed_on_cuda_without_cuda(tmp_path, monkeypatch, store):
    no_cuda(monkeypatch)
    audio = write_tone_folder(tmp_path / "audio", 1, 16000, 1.0)
    checkpoint = untrained_checkpoint(tmp_path, "clmr-cpu")
    return (["embed", str(audio), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out"), "--device", "cuda",
             "--quiet"], "device 'cuda' asked for, but torch sees no CUDA device")


def evaluate_on_cuda_without_cuda(tmp_path, monkeypatch, store):
    no_cuda(monkeypatch)
    task = task_folder(tmp_path / "task")
    return (evaluate(tmp_path, untrained_checkpoint(tmp_path, "clmr-cpu"), task, "--device", "cuda"),
            "device 'cuda' asked for, but torch sees no CUDA device")


def corpus_at_sample_rate_zero(tmp_path, monkeypatch, store):
    return (["corpus", "build", str(tmp_path / "corpus"), "--size", "small", "--sample-rate", "0", "--quiet"],
            "the sample rate must be a whole number of Hz from 8000")


def a_wav_given_as_soundfont(tmp_path, monkeypatch, store):
    write_tone_folder(tmp_path / "audio", 1, 16000, 1.0)
    wav = tmp_path / "audio" / "tone000.wav"
    return (["corpus", "build", str(tmp_path / "corpus"), "--size", "small", "--soundfont", str(wav), "--quiet"],
            f"{wav}: not a SoundFont")


def latin1_task_table(tmp_path, monkeypatch, store):
    task = task_folder(tmp_path / "task", TASK_ROWS.replace("high", "aigu\u00e9"), encoding="latin-1")
    return evaluate(tmp_path, untrained_checkpoint(tmp_path, "clmr-cpu"), task), "genre.csv: not UTF-8 text"


def non_numeric_regression_label(tmp_path, monkeypatch, store):
    rows = TASK_ROWS.replace(",low", ",120").replace(",high", ",fast")
    task = task_folder(tmp_path / "task", rows, header=TASK_HEADER.replace("multiclass", "regression"))
    return (evaluate(tmp_path, untrained_checkpoint(tmp_path, "clmr-cpu"), task),
            "genre.csv, line 3: regression label 'fast' (column genre) is not a number")


def damaged_store_index(tmp_path, monkeypatch, store):
    damaged = tmp_path / "store"
    shutil.copytree(store, damaged)
    (damaged / "index-length.npy").write_bytes(b"\x00" * 64)
    return pretrain(tmp_path, store=damaged), f"{damaged / 'index-length.npy'}: the store's index is damaged"


def prepare_into_a_store_being_prepared(tmp_path, monkeypatch, store):
    audio = write_tone_folder(tmp_path / "audio", 1, 16000, 1.0)
    (tmp_path / "store").mkdir()
    running = open(tmp_path / "store" / "prepare.lock", "w")  # the lock the first prepare holds
    fcntl.flock(running, fcntl.LOCK_EX)
    return (["prepare", str(audio), str(tmp_path / "store"), "--sample-rate", "16000", "--quiet"],
            f"{tmp_path / 'store'} is in use by another mucon prepare",
            lambda: running.close() or sorted(path.name for path in (tmp_path / "store").iterdir()) == ["prepare.lock"])


def checkpoint_of_nan_weights(tmp_path, monkeypatch, store):
    checkpoint = untrained_checkpoint(tmp_path, "clmr-cpu")
    contents = torch.load(checkpoint, weights_only=True)
    next(tensor for tensor in contents["state_dict"].values() if tensor.is_floating_point()).fill_(float("nan"))
    torch.save(contents, checkpoint)
    task = task_folder(tmp_path / "task")
    return evaluate(tmp_path, checkpoint, task), f"{checkpoint}: the checkpoint holds NaN or infinite weights"


CASES = [accumulate_zero, max_time_banana, config_a_yaml_scalar, config_a_yaml_list, override_without_equals,
         override_building_a_python_object, disk_full_during_a_checkpoint_save, ctrl_c_in_evaluate,
         mtg_jamendo_row_with_too_few_fields, task_row_shorter_than_its_header, broken_task_yaml, max_chunks_many,
         embed_on_cuda_without_cuda, evaluate_on_cuda_without_cuda, corpus_at_sample_rate_zero,
         a_wav_given_as_soundfont, latin1_task_table, non_numeric_regression_label, damaged_store_index,
         prepare_into_a_store_being_prepared, checkpoint_of_nan_weights]


@pytest.mark.parametrize("case", CASES, ids=[case.__name__ for case in CASES])
def test_a_user_error_is_one_line_on_stderr_and_exit_status_2(case, tmp_path, monkeypatch, tone_store, capsys):
    argv, words, *after = case(tmp_path, monkeypatch, tone_store)
    try:
        status = main(argv)
    except KeyboardInterrupt:  # caught here, it fails this test instead of stopping the test run
        pytest.fail("Ctrl-C came out of the command as a KeyboardInterrupt")
    error = capsys.readouterr().err
    assert "Traceback" not in error
    assert error.count("\n") == 1 and error.startswith(f"mucon {argv[0]}: "), error
    assert words in error
    assert status == (130 if case is ctrl_c_in_evaluate else 2)
    assert all(check() for check in after)


def test_embed_separate_and_prepare_skip_and_list_a_file_that_decodes_to_no_sample(tmp_path, capsys):
    audio = write_tone_folder(tmp_path / "audio", 2, 16000, 2.0)
    (audio / "metadata.csv").unlink()
    sf.write(audio / "one.wav", np.zeros(1, np.float32), 44100)  # one sample at 44.1 kHz: none at 16 kHz
    checkpoint = untrained_checkpoint(tmp_path, "clmr-cpu")
    assert main(["embed", str(audio), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    assert main(["separate", str(audio), str(tmp_path / "separated"), "--sample-rate", "16000", "--quiet"]) == 0
    assert main(["prepare", str(audio), str(tmp_path / "store"), "--sample-rate", "16000", "--workers", "0",
                 "--quiet"]) == 0
    embedded, separated, prepared = capsys.readouterr().out.splitlines()
    assert "embedded 2 files" in embedded and "failed 1, listed in" in embedded
    assert "separated 2 files" in separated and "failed 1, listed in" in separated
    assert "skipped 1 (1 too short)" in prepared
    for listing in (tmp_path / "out" / "failed.csv", tmp_path / "separated" / "skipped.csv",
                    tmp_path / "store" / "skipped.csv"):
        with open(listing, newline="") as handle:
            assert [(row["path"], row["reason"]) for row in csv.DictReader(handle)] == [("one.wav", "too short")]


def test_a_task_table_with_a_byte_order_mark_reads_its_first_column(tmp_path):
    from mucon.evaluation.tasks import load_task

    task = load_task(task_folder(tmp_path, "\ufeff" + TASK_ROWS))  # as spreadsheet programs save UTF-8
    assert task.paths == ("tone000.wav", "tone001.wav", "tone002.wav", "tone003.wav")


def test_hear_load_model_refuses_batch_size_0_and_a_device_this_machine_lacks(tmp_path, monkeypatch):
    from mucon import hear

    checkpoint = untrained_checkpoint(tmp_path, "clmr-cpu")
    with pytest.raises(ValueError, match="batch_size must be a whole number of windows, 1 or more; got 0"):
        hear.load_model(str(checkpoint), batch_size=0)
    no_cuda(monkeypatch)
    with pytest.raises(ValueError, match="device 'cuda' asked for, but torch sees no CUDA device here"):
        hear.load_model(str(checkpoint), device="cuda")


def test_a_save_on_a_full_disk_leaves_the_earlier_file_whole_and_says_so(tmp_path):
    from mucon.files import DiskFull, write_atomically

    target = tmp_path / "last.ckpt"
    target.write_bytes(b"the earlier checkpoint")

    def fill_the_disk(handle):
        handle.write(b"half of a new one")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(DiskFull, match="last.ckpt: the disk is full .*last.ckpt is whole, as it was before this save"):
        write_atomically(target, fill_the_disk)
    assert target.read_bytes() == b"the earlier checkpoint"
    assert [path.name for path in tmp_path.iterdir()] == ["last.ckpt"]


def test_masks_draws_a_file_whose_name_is_not_utf8_and_prints_its_name_readably(tmp_path, capsys):
    write_tone_folder(tmp_path / "audio", 1, 16000, 1.0)
    name = os.fsdecode(os.fsencode(tmp_path / "audio") + b"/caf\xe9.wav")  # a Latin-1 name
    os.rename(tmp_path / "audio" / "tone000.wav", name)
    checkpoint = untrained_checkpoint(tmp_path, "pemr-cpu", "method.crop_samples=8000",
                                      "encoder.params.input_samples=8000", "method.feedforward_dim=128")
    assert main(["masks", name, "--checkpoint", str(checkpoint), "--out", str(tmp_path / "masks")]) == 0
    assert capsys.readouterr().out == f"{tmp_path / 'masks'}/caf\\xe9.png\n"
    assert os.listdir(os.fsencode(tmp_path / "masks")) == [b"caf\xe9.png"]
