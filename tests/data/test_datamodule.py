"""The data path every method stands on: label rows, pools, batch composition, crops, resume."""

import csv

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from mucon.audio.store import AudioStore
from mucon.audio.store_writer import prepare_store
from mucon.config import DataConfig
from mucon.data.datamodule import ClipDataset, StoreDataModule, label_vocabulary, labelled_flags, multi_hot
from mucon.data.request import DataRequest
from mucon.data.sampler import PoolBatchSampler, split_pools

RATE = 8000


@pytest.fixture(scope="module")
def labelled_store(tmp_path_factory):
    """40 one-second noise items; tags on some, an explicit labelled flag, one labelled item with no tag."""
    root = tmp_path_factory.mktemp("labelled")
    audio = root / "audio"
    audio.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(40):
        name = f"item{i:02d}.wav"
        sf.write(audio / name, (0.2 * rng.standard_normal(RATE)).astype(np.float32), RATE)
        labelled = i % 2 == 0
        tags = ["rock", "jazz;piano", "rock;piano", "pop"][i % 4] if labelled and i != 0 else ""
        rows.append({"path": name, "tags": tags, "labelled": int(labelled)})
    with open(audio / "metadata.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "tags", "labelled"])
        writer.writeheader()
        writer.writerows(rows)
    prepare_store(audio, root / "store", RATE, progress=False, num_workers=1)
    return root / "store"


@pytest.fixture(scope="module")
def ramp_store(tmp_path_factory):
    """Items whose sample values count up, so a crop's first sample says where it was cut."""
    root = tmp_path_factory.mktemp("ramp")
    audio = root / "audio"
    audio.mkdir()
    for i in range(6):
        ramp = (np.arange(3 * RATE) % 30000 + 1000 * i).astype(np.int16)
        sf.write(audio / f"ramp{i}.wav", ramp, RATE, subtype="PCM_16")
    prepare_store(audio, root / "store", RATE, progress=False, num_workers=1)
    return root / "store"


def data_module(store, **settings):
    return StoreDataModule(DataConfig(store=str(store), sample_rate=RATE, num_workers=0, **settings), seed=0)


def test_vocabulary_is_the_sorted_distinct_labels_of_multi_label_cells():
    assert label_vocabulary(np.array(["rock;piano", "", "jazz", "rock"]), ";") == ["jazz", "piano", "rock"]


def test_multi_hot_rows_mark_each_label_and_leave_an_empty_cell_all_zero():
    rows = multi_hot(np.array(["rock;piano", "", "jazz"]), ["jazz", "piano", "rock"], ";")
    np.testing.assert_array_equal(rows, [[0, 1, 1], [0, 0, 0], [1, 0, 0]])


def test_labelled_flags_read_common_spellings_and_name_a_bad_row():
    np.testing.assert_array_equal(labelled_flags(np.array(["1", "0", "true", "No", ""]), "t.csv"), [1, 0, 1, 0, 0])
    with pytest.raises(ValueError, match="t.csv: row 2 .*'maybe'"):
        labelled_flags(np.array(["1", "maybe"]), "t.csv")


def test_labelled_with_no_tag_is_not_the_same_as_unlabelled(labelled_store):
    module = data_module(labelled_store, label_column="tags", labelled_column="labelled", batch_size=8)
    assert module.labelled[0] and not module.label_rows[0].any()  # labelled, no tag
    assert not module.labelled[1]
    without_flag = data_module(labelled_store, label_column="tags", batch_size=8)
    assert not without_flag.labelled[0]  # without the flag an empty cell means unlabelled
    composition = module.composition(DataRequest(100, labels=True, labelled_share=0.5))
    assert 0 in composition.pools[composition.labelled_pool]


def test_every_batch_holds_exactly_the_configured_number_of_labelled_clips(labelled_store):
    module = data_module(labelled_store, label_column="tags", labelled_column="labelled", batch_size=8)
    request = DataRequest(100, labels=True, labelled_share=0.3, labelled_keep=0.5)
    sampler = module.batch_sampler(request)
    for step in range(1000):
        assert sum(draw.labelled for draw in sampler.batch(step)) == round(0.3 * 8)


def test_the_labelled_share_and_the_kept_fraction_round_down_as_in_the_release(labelled_store):
    # SemiSupCon's release: int(B * b_s) labelled clips, int(labelled * p_s) items keep their labels
    module = data_module(labelled_store, label_column="tags", labelled_column="labelled", batch_size=8)
    composition = module.composition(DataRequest(100, labels=True, labelled_share=0.7))
    assert composition.counts[composition.labelled_pool] == 5  # 5.6 rounds down, not to 6
    labelled = np.arange(10) < 5
    assert len(split_pools(labelled, 0.3, seed=0)[0]) == 1  # 1.5 rounds down, not to 2
    assert len(split_pools(np.ones(100, bool), 0.29, seed=0)[0]) == 29  # no float noise: 0.29 x 100 is 28.999...


def test_the_labelled_subset_is_fixed_by_the_seed_and_changes_with_it():
    labelled = np.arange(100) % 3 == 0
    kept, unlabelled = split_pools(labelled, 0.25, seed=1)
    np.testing.assert_array_equal(kept, split_pools(labelled, 0.25, seed=1)[0])
    assert not np.array_equal(kept, split_pools(labelled, 0.25, seed=2)[0])
    assert len(kept) == round(0.25 * labelled.sum()) and labelled[kept].all()
    assert sorted([*kept, *unlabelled]) == list(range(100))  # labelled items not kept join the unlabelled pool


def test_the_labelled_subset_does_not_depend_on_the_number_of_processes(labelled_store):
    module = data_module(labelled_store, label_column="tags", labelled_column="labelled", batch_size=4)
    request = DataRequest(100, labels=True, labelled_share=0.5, labelled_keep=0.5)
    one, two = module.batch_sampler(request), module.batch_sampler(request, world_size=2, rank=1)
    np.testing.assert_array_equal(one.pools[0], two.pools[0])


def test_two_processes_draw_disjoint_items_that_together_are_what_one_process_draws():
    pools, request = [np.arange(48)], DataRequest(100)
    single = PoolBatchSampler(pools, [8], request, seed=3)
    ranks = [PoolBatchSampler(pools, [4], request, seed=3, world_size=2, rank=rank) for rank in (0, 1)]
    assert len(single) == len(ranks[0]) == 6
    epoch = [[draw.item for batch in sampler for draw in batch] for sampler in ranks]
    assert not set(epoch[0]) & set(epoch[1])
    assert sorted(epoch[0] + epoch[1]) == sorted(draw.item for batch in single for draw in batch) == list(range(48))
    for step in range(20):  # the same clips, cut the same way, batch after batch
        assert single.batch(step) == ranks[0].batch(step) + ranks[1].batch(step)


def test_each_pass_over_a_pool_is_a_new_shuffle():
    sampler = PoolBatchSampler([np.arange(12)], [4], DataRequest(100), seed=0)
    first, second = ([d.item for step in steps for d in sampler.batch(step)] for steps in (range(3), range(3, 6)))
    assert sorted(first) == sorted(second) == list(range(12)) and first != second


def test_iteration_resumes_at_the_runs_position_and_ends_with_its_epoch():
    position = [5]
    sampler = PoolBatchSampler([np.arange(12)], [4], DataRequest(100), seed=0, start_position=lambda: position[0])
    assert list(sampler) == [sampler.batch(5)]  # step 5 is the last of the second epoch (3 steps each)
    position[0] = 6
    assert list(sampler) == [sampler.batch(step) for step in (6, 7, 8)]


def test_a_batch_of_one_clip_is_refused_since_its_anchors_have_no_negative(labelled_store):
    module = data_module(labelled_store, batch_size=1)
    with pytest.raises(ValueError, match="without a negative"):
        module.batch_sampler(DataRequest(100))
    module.batch_sampler(DataRequest(100), world_size=2)  # two processes of one clip gather two


def test_a_store_smaller_than_a_batch_says_which_batch_size_or_crops_per_item_would_fit(ramp_store):
    with pytest.raises(ValueError, match="6 items give 6 clips an epoch .* fewer than one batch of 8; set "
                                         "data.batch_size to 6 or less, or data.crops_per_item to 2"):
        data_module(ramp_store, batch_size=8)
    with pytest.raises(ValueError, match="fewer than one batch of 8; set data.batch_size to 3 or less, or "
                                         "data.crops_per_item to 2"):
        data_module(ramp_store, batch_size=4).batch_sampler(DataRequest(100), world_size=2)


def test_crops_per_item_lets_a_few_items_fill_batches_cutting_each_that_many_clips_an_epoch(ramp_store):
    module = data_module(ramp_store, batch_size=8, crops_per_item=4)
    sampler = module.batch_sampler(DataRequest(100))
    epoch = [draw for batch in sampler for draw in batch]
    assert len(sampler) == 3 and sorted(draw.item for draw in epoch) == sorted(list(range(6)) * 4)
    dataset = ClipDataset(module.store, DataRequest(100))
    starts = {(draw.item, dataset[draw]["start"]) for draw in epoch}
    assert len(starts) == len(epoch)  # the crops of one item are cut at their own places
    again = data_module(ramp_store, batch_size=8, crops_per_item=4).batch_sampler(DataRequest(100))
    assert [again.batch(step) for step in (4, 1)] == [sampler.batch(step) for step in (4, 1)]


def test_pure_self_supervision_is_said_with_its_reason(labelled_store):
    request = DataRequest(100, labels=True, labelled_share=0.5)
    assert "no data.label_column" in data_module(labelled_store, batch_size=4).composition(request).description
    labelled = data_module(labelled_store, label_column="tags", labelled_column="labelled", batch_size=4)
    assert labelled.composition(request).description.startswith("semi-supervised: 2 of 4")
    no_share = DataRequest(100, labels=True, labelled_share=0.0)
    assert "b_s) is 0" in labelled.composition(no_share).description
    no_keep = DataRequest(100, labels=True, labelled_share=0.5, labelled_keep=0.0)
    assert "p_s) is 0" in labelled.composition(no_keep).description
    keeps_none = DataRequest(100, labels=True, labelled_share=0.5, labelled_keep=0.01)
    assert "p_s) 0.01 keeps none of the 20 labelled items" in labelled.composition(keeps_none).description
    rounds_to_none = DataRequest(100, labels=True, labelled_share=0.1)
    assert "b_s) 0.1 of a batch of 4 rounds down to 0 clips" in labelled.composition(rounds_to_none).description


def test_with_every_item_labelled_and_kept_the_unlabelled_share_draws_every_item_without_labels(labelled_store):
    module = data_module(labelled_store, label_column="tags", labelled_column="labelled", batch_size=4)
    module.labelled[:] = True  # p_s = 1 on a fully labelled store: no item is left unlabelled
    request = DataRequest(100, labels=True, labelled_share=0.5)
    composition = module.composition(request)
    assert composition.counts == (2, 2)
    assert len(composition.pools[composition.labelled_pool]) == len(composition.pools[1]) == 40
    sampler = module.batch_sampler(request)
    assert all(sum(draw.labelled for draw in sampler.batch(step)) == 2 for step in range(50))


def test_a_clip_carries_label_rows_only_when_it_is_drawn_as_labelled(labelled_store):
    module = data_module(labelled_store, label_column="tags", labelled_column="labelled", batch_size=4)
    request = DataRequest(100, labels=True, labelled_share=0.5)
    dataset = ClipDataset(module.store, request, module.label_rows)
    for draw in module.batch_sampler(request).batch(0):
        clip = dataset[draw]
        assert clip["labelled"] == draw.labelled
        expected = module.label_rows[draw.item] if draw.labelled else np.zeros(len(module.vocabulary))
        np.testing.assert_array_equal(clip["labels"].numpy(), expected)


def test_adjacent_chunks_are_consecutive_non_overlapping_pieces_of_one_excerpt(ramp_store):
    store = AudioStore(ramp_store)
    request = DataRequest(crop_samples=1000, views=3)
    dataset = ClipDataset(store, request)
    for draw in PoolBatchSampler([np.arange(6)], [6], request, seed=0).batch(0):
        clip = dataset[draw]
        assert clip["audio"].shape == (3, 1000)
        for view in range(3):
            expected = store.read(draw.item, clip["start"] + 1000 * view, 1000)
            np.testing.assert_array_equal(clip["audio"][view].numpy(), expected)
        assert 0 <= clip["start"] <= 3 * RATE - 3000


def test_crops_anywhere_give_each_view_its_own_start_independent_of_the_other_and_covering_the_item(ramp_store):
    # ramp item i holds sample value position + 1000 i: a view's first sample says where it was cut
    store = AudioStore(ramp_store)
    request = DataRequest(crop_samples=1000, views=2, layout="anywhere")
    dataset = ClipDataset(store, request)
    starts = []
    for step in range(50):
        for draw in PoolBatchSampler([np.arange(6)], [6], request, seed=0).batch(step):
            clip = dataset[draw]
            first_samples = clip["audio"][:, 0].numpy().astype(np.int64) - 1000 * draw.item
            for view, start in enumerate(first_samples):
                np.testing.assert_array_equal(clip["audio"][view].numpy(), store.read(draw.item, int(start), 1000))
            starts.append(first_samples)
    first, second = np.array(starts, dtype=float).T
    last_start = 3 * RATE - 1000
    assert abs(np.corrcoef(first, second)[0, 1]) < 0.2  # 300 pairs: the spread of r is about 0.06
    for view in (first, second):
        assert view.min() >= 0 and view.max() <= last_start
        shares = np.histogram(view, bins=4, range=(0, last_start))[0] / len(view)
        assert shares.min() > 0.15  # uniform over the whole item: every quarter gets its share


def test_independent_crops_lie_inside_one_segment(ramp_store):
    store = AudioStore(ramp_store)
    request = DataRequest(crop_samples=800, views=2, layout="independent", segment_samples=4000)
    dataset = ClipDataset(store, request)
    offsets = []
    for step in range(10):
        for draw in PoolBatchSampler([np.arange(6)], [6], request, seed=0).batch(step):
            clip = dataset[draw]
            segment = store.read(draw.item, clip["start"], 4000)
            for view in clip["audio"].numpy():
                offset = int(np.flatnonzero(segment == view[0])[0])
                np.testing.assert_array_equal(segment[offset : offset + 800], view)
                offsets.append(offset)
    assert min(offsets) >= 0 and max(offsets) <= 3200 and len(set(offsets)) > 50


def test_batches_do_not_depend_on_the_number_of_loader_workers(ramp_store):
    store = AudioStore(ramp_store)
    request = DataRequest(crop_samples=500, views=2)
    sampler = PoolBatchSampler([np.arange(6)], [3], request, seed=4)

    def batches(workers):
        loader = DataLoader(ClipDataset(store, request), batch_sampler=sampler, num_workers=workers)
        return [batch["audio"] for batch in loader]

    for serial, parallel in zip(batches(0), batches(2), strict=True):
        torch.testing.assert_close(serial, parallel)


def test_a_request_for_sources_from_a_mixture_only_store_says_how_to_make_one(labelled_store):
    module = data_module(labelled_store, batch_size=4)
    with pytest.raises(ValueError, match="mucon separate"):
        module.batch_sampler(DataRequest(100, sources=("drums",)))


@pytest.fixture(scope="module")
def musdb_store(tmp_path_factory):
    """Six MUSDB18-HQ tracks of 2 s: vocals silent in the first half of three, absent from one."""
    from multitrack import write_musdb_folder

    root = write_musdb_folder(tmp_path_factory.mktemp("musdb") / "musdb18hq", tracks=6, seconds=2.0)
    vocals = root / "train" / "Track 0" / "vocals.wav"
    data, rate = sf.read(vocals, dtype="int16")
    sf.write(vocals, np.zeros_like(data), rate, subtype="PCM_16")  # a track without vocals
    prepare_store(root, root.parent / "store", RATE, progress=False, num_workers=1)
    return root.parent / "store"


def test_presence_says_whether_the_source_sounds_in_the_clips_segment(musdb_store):
    store = AudioStore(musdb_store)
    request = DataRequest(crop_samples=1000, layout="independent", segment_samples=RATE // 2, sources=("vocals",))
    dataset = ClipDataset(store, request)
    half_silent = [i for i in range(len(store)) if store.path(i).startswith("train/Track 1")][0]
    seen = set()
    for step in range(40):
        clip = dataset[PoolBatchSampler([np.array([half_silent])], [1], request, seed=step).batch(0)[0]]
        end = clip["start"] + RATE // 2
        if end <= RATE:  # the segment lies in the silent first second
            assert not clip["source_present"][0]
            seen.add(False)
        elif clip["start"] >= RATE:
            assert clip["source_present"][0]
            seen.add(True)
    assert seen == {False, True}


def test_a_source_crop_is_the_stem_at_its_own_start_inside_the_segment(musdb_store):
    store = AudioStore(musdb_store)
    request = DataRequest(crop_samples=800, layout="independent", segment_samples=4000, sources=("drums", "bass"))
    dataset = ClipDataset(store, request)
    for draw in PoolBatchSampler([np.arange(len(store))], [6], request, seed=0).batch(0):
        clip = dataset[draw]
        assert clip["sources"].shape == (2, 800)
        for row, name in enumerate(("drums", "bass")):
            segment = store.read_sources(draw.item, clip["start"], 4000, [name])[0]
            windows = np.lib.stride_tricks.sliding_window_view(segment, 800)
            assert (windows == clip["sources"][row].numpy()).all(axis=1).any()


def test_one_source_per_batch_is_shared_by_every_clip_and_every_process(musdb_store):
    module = data_module(musdb_store, batch_size=2)
    request = DataRequest(crop_samples=1000, sources=("vocals", "drums", "bass", "other"), source_per_batch=True)
    ranks = [module.batch_sampler(request, world_size=2, rank=rank) for rank in (0, 1)]
    drawn = set()
    for step in range(40):
        sources = {draw.source for rank in ranks for draw in rank.batch(step)}
        assert len(sources) == 1
        drawn |= sources
    assert drawn == {0, 1, 2, 3}
    clip = ClipDataset(module.store, request)[ranks[0].batch(0)[0]]
    assert clip["sources"].shape == (1, 1000) and clip["source_index"] == ranks[0].batch(0)[0].source


def test_present_only_batches_hold_only_clips_whose_source_sounds(musdb_store):
    module = data_module(musdb_store, batch_size=6)
    request = DataRequest(crop_samples=1000, layout="independent", segment_samples=RATE // 2, sources=("vocals",),
                          source_per_batch=True, present_only_probability=0.5)
    sampler = module.batch_sampler(request)
    dataset = ClipDataset(module.store, request)
    kinds = {True: 0, False: 0}
    for step in range(30):
        batch = sampler.batch(step)
        kinds[batch[0].present_only] += 1
        if batch[0].present_only:
            assert all(module.store.has_source[draw.item, 0] for draw in batch)  # never the track without vocals
            assert all(dataset[draw]["source_present"][0] for draw in batch)
    assert kinds[True] > 5 and kinds[False] > 5
