"""A method composed in the config from parts: which views of a clip, which pairs are positives, which loss.

``method.views`` lists view parts, each adding views of every clip of the batch:

- ``chunks``: SemiSupCon's N (``method.chunks``) adjacent chunks of one excerpt, through its chain;
- ``crops``: CLMR's two crops, each anywhere in the item, each through the CLMR chain;
- ``mixture_crop``: MSCOL's anchor, one crop of the mixture inside a segment (``segment_samples``), as is;
- ``source_crop``: MSCOL's positive, one crop of the batch's source (drawn per batch from ``sources``)
  of the same excerpt, as is; an absent source gives no view (its row is left out of the loss, since
  zero inputs embed alike and would be each other's hard negatives);
- ``masked``: PEMR's positive, added after the others: the second view's spectrogram with its
  ``mask_ratio`` least important frames (scored by PEMR's frame transformer against the first view)
  replaced by the learned [MASK] frame; the transformer learns from PEMR's frame prediction task, whose
  loss is added with ``prediction_weight``. It needs a first part of two views or more (chunks, crops).

``method.positives`` lists positive parts, OR-ed into one mask (summed and clipped at 1 when weighted):
``views`` (views of one clip, always on: without it a clip's own views would be negatives), ``labels``
(SemiSupCon's: at least T shared labels, or their Dice overlap; with the labelled share b_s and the kept
share p_s of its data request) and ``sources`` (clips cut from the same source recording, a store item).
``method.loss`` is ``supcon`` (SupCon's L_out over that mask) or ``ntxent`` (the same loss, which
admits only the ``views`` positive: CLMR's). ``method.chain`` names, by import path, an augmentation chain
of the user's own (a ``mucon.Augmentation`` subclass built with the sample rate) that the chunks and
crops parts apply instead of their method's.

Every view has the same length, ``crop_samples``, so that all go through the network as one batch (one
set of batch-norm statistics, as SemiSupCon's chunks and MSCOL's pairs do). The data request is the
union of the parts' requests; two parts asking the same setting different values is a config error
naming both. The five methods stay as they are; tests/methods/test_composed.py shows that a
composition of SemiSupCon's and CLMR's parts computes their loss on the same batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import torch

from mucon.audio.augment import Augmentation, ClipGroups
from mucon.audio.chains import clmr_chain, semisupcon_chain
from mucon.config import ConfigError
from mucon.data.layouts import SOURCE_TYPES
from mucon.data.request import ADJACENT, ANYWHERE, INDEPENDENT, DataRequest
from mucon.encoders import SpectrogramEncoder
from mucon.losses import ContrastiveLoss, nt_xent_ids
from mucon.losses.contrastive import global_mean
from mucon.methods.base import Method
from mucon.methods.clmr import two_view_crops
from mucon.methods.pemr import FrameMasking, FrameMaskingParams, frame_tokens, replace_frames
from mucon.methods.semisupcon import SemiSupCon
from mucon.user_code import import_named


@dataclasses.dataclass
class ComposedParams(FrameMaskingParams):  # the masked part's settings, PEMR's defaults
    views: list[str] = dataclasses.field(default_factory=lambda: ["chunks"])
    positives: list[str] = dataclasses.field(default_factory=lambda: ["views"])
    loss: str = "supcon"
    crop_samples: int = 32000  # every view's length
    chunks: int = 2  # N of the chunks part
    segment_samples: int | None = None  # mixture_crop: the segment its crop (and a source crop) lies in
    sources: list[str] = dataclasses.field(default_factory=lambda: list(SOURCE_TYPES))
    present_only_probability: float = 0.5
    presence_threshold: float = 0.01
    labelled_share: float = 0.5  # b_s
    labelled_keep: float = 1.0  # p_s
    min_shared_labels: int = 1  # T
    weighted: bool = False
    temperature: float = 0.1
    severity: float = 1.0  # the chunks part's SemiSupCon chain
    pitch_shift: bool = True  # the crops part's CLMR chain
    chain: str | None = None  # the user's own chain for chunks and crops, by import path (my_lab.chains:MyChain)


class Views(NamedTuple):
    """A view part's output: ``waveforms [k B, T]`` view-major, their item levels (None unless the frontend
    scales by them) and which rows are absent (no view: left out of the loss)."""

    waveforms: torch.Tensor
    level: torch.Tensor | None
    absent: torch.Tensor


@dataclasses.dataclass(frozen=True)
class ViewPart:
    request: Callable[[ComposedParams], dict[str, Any]]  # its share of the DataRequest
    make: Callable[[Composed, dict[str, torch.Tensor]], Views]


def _repeat_level(method: Composed, batch: dict[str, torch.Tensor], times: int) -> torch.Tensor | None:
    level = method.item_level(batch)
    return level.repeat(times) if level is not None else None


def _present(waveforms: torch.Tensor) -> torch.Tensor:
    return torch.zeros(waveforms.shape[0], dtype=torch.bool, device=waveforms.device)


def _chunks(method: Composed, batch: dict[str, torch.Tensor]) -> Views:
    audio = method.audio(batch)  # [B, N, T]
    clips, views, samples = audio.shape
    chunks = audio.transpose(0, 1).reshape(views * clips, samples)
    chunks = method.augment["chunks"](chunks, method.view_generator, ClipGroups.view_major(clips, views, chunks.device))
    return Views(chunks, _repeat_level(method, batch, views), _present(chunks))


def _crops(method: Composed, batch: dict[str, torch.Tensor]) -> Views:
    chain = method.augment["crops"]
    first, second = two_view_crops(method.audio(batch))
    crops = torch.cat([chain(first, method.view_generator), chain(second, method.view_generator)])
    return Views(crops, _repeat_level(method, batch, 2), _present(crops))


def _mixture_crop(method: Composed, batch: dict[str, torch.Tensor]) -> Views:
    mixture = method.audio(batch)[:, 0]
    return Views(mixture, method.item_level(batch), _present(mixture))


def _source_crop(method: Composed, batch: dict[str, torch.Tensor]) -> Views:
    level = method.item_level(batch, "source_level")
    return Views(method.audio(batch, "sources")[:, 0], level[:, 0] if level is not None else None,
                 ~batch["source_present"][:, 0].bool())


VIEW_PARTS: dict[str, ViewPart] = {
    "chunks": ViewPart(lambda p: {"crop_samples": p.crop_samples, "views": p.chunks, "layout": ADJACENT}, _chunks),
    "crops": ViewPart(lambda p: {"crop_samples": p.crop_samples, "views": 2, "layout": ANYWHERE}, _crops),
    "mixture_crop": ViewPart(lambda p: {"crop_samples": p.crop_samples, "layout": INDEPENDENT,
                                        "segment_samples": p.segment_samples or p.crop_samples}, _mixture_crop),
    "source_crop": ViewPart(lambda p: {"crop_samples": p.crop_samples, "sources": tuple(p.sources),
                                       "source_per_batch": True, "present_only_probability": p.present_only_probability,
                                       "presence_threshold": p.presence_threshold}, _source_crop),
}
MASKED = "masked"  # made from the other parts' spectrograms, so none of VIEW_PARTS
VIEW_NAMES = (*VIEW_PARTS, MASKED)
POSITIVE_PARTS: dict[str, Callable[[ComposedParams], dict[str, Any]]] = {
    "views": lambda p: {},
    "labels": lambda p: {"labels": True, "labelled_share": p.labelled_share, "labelled_keep": p.labelled_keep},
    "sources": lambda p: {},  # the batch's item indices, which every batch holds
}
LOSSES = ("supcon", "ntxent")


def union_request(requests: dict[str, dict[str, Any]], item_level: bool) -> DataRequest:
    """One ``DataRequest`` holding every part's request ({part: its settings}); a setting two parts ask
    different values of is a ``ConfigError`` naming both."""
    merged: dict[str, Any] = {}
    asked_by: dict[str, str] = {}
    for part, request in requests.items():
        for key, value in request.items():
            if key in merged and merged[key] != value:
                raise ConfigError(f"method composed: parts {asked_by[key]!r} and {part!r} ask the data for "
                                  f"{key}={merged[key]!r} and {key}={value!r}; they cannot share a batch")
            merged[key], asked_by[key] = value, asked_by.get(key, part)
    return DataRequest(**merged, item_level=item_level)


def _check_names(kind: str, names: list[str], known) -> None:
    unknown = [name for name in names if name not in known]
    if not names or unknown or len(set(names)) < len(names):
        raise ConfigError(f"method.{kind}: {names} must name distinct parts among {', '.join(known)}")


class Composed(FrameMasking, Method):
    Params = ComposedParams

    def __init__(self, config, label_vocabulary=None):
        super().__init__(config, label_vocabulary)
        params = self.params
        _check_names("views", params.views, VIEW_NAMES)
        _check_names("positives", params.positives, POSITIVE_PARTS)
        if "views" not in params.positives:
            raise ConfigError(f"method.positives: {params.positives} lacks 'views': a clip's own views would be "
                              "its negatives")
        if params.loss not in LOSSES:
            raise ConfigError(f"method.loss must be one of {', '.join(LOSSES)}, got {params.loss!r}")
        if params.loss == "ntxent" and params.positives != ["views"]:
            raise ConfigError(f"method.loss ntxent takes only the views positive, got {params.positives}; use supcon")
        unknown = [name for name in params.sources if name not in SOURCE_TYPES]
        if "source_crop" in params.views:
            if not params.sources or unknown or len(set(params.sources)) < len(params.sources):
                raise ConfigError(f"method.sources: {params.sources} must name distinct source types among "
                                  f"{', '.join(SOURCE_TYPES)}")
            if not isinstance(self.encoder, SpectrogramEncoder):
                raise ConfigError(f"method composed: view source_crop needs a spectrogram encoder (small_cnn, "
                                  f"efficientnet_b0) to give absent sources zero inputs; {config.encoder.name!r} "
                                  "takes waveforms")
        if "labels" in params.positives and params.min_shared_labels < 1:
            raise ConfigError(f"method.min_shared_labels (T) must be at least 1, got {params.min_shared_labels}")
        self.augment = torch.nn.ModuleDict()  # by view part; named as the five name their chain (robustness reads it)
        rate = config.data.sample_rate
        own_chain = import_named(params.chain, Augmentation, "method.chain") if params.chain else None
        if "chunks" in params.views:
            self.augment["chunks"] = own_chain(rate) if own_chain else semisupcon_chain(rate, params.severity)
        if "crops" in params.views:
            self.augment["crops"] = own_chain(rate) if own_chain else clmr_chain(rate, pitch_shift=params.pitch_shift)
        if MASKED in params.views:
            if params.views[0] not in ("chunks", "crops") or params.views[0] == "chunks" and params.chunks < 2:
                raise ConfigError(f"method.views: {params.views}: masked masks a clip's second view, so the first "
                                  "part must give two views or more (chunks, crops)")
            self.build_frame_masking()
        self.loss = ContrastiveLoss(params.temperature, min_shared_labels=params.min_shared_labels,
                                    weighted=params.weighted)
        self._data_request = union_request(
            {**{name: VIEW_PARTS[name].request(params) for name in params.views if name != MASKED},
             **{f"positives {name}": POSITIVE_PARTS[name](params) for name in params.positives}},
            item_level=self.scales_by_item_level)

    @property
    def data_request(self) -> DataRequest:
        return self._data_request

    def check_composition(self, composition):
        if "labels" in self.params.positives:
            SemiSupCon.check_composition(self, composition)  # same settings, same warning

    def embed_views(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """Every part's views through the network in one batch: projections ``[V B, d]`` view-major, which
        rows are absent, and the masked part's frame prediction loss (if it is a part)."""
        views = [VIEW_PARTS[name].make(self, batch) for name in self.params.views if name != MASKED]
        waveforms = torch.cat([view.waveforms for view in views])
        level = torch.cat([view.level for view in views]) if self.scales_by_item_level else None
        absent = torch.cat([view.absent for view in views])
        if "source_crop" not in self.params.views and MASKED not in self.params.views:
            return self.project(waveforms, level), absent, {}
        spectrograms = self.spectrograms(waveforms, level).masked_fill(absent[:, None, None], 0.0)
        if MASKED not in self.params.views:
            return self.project_spectrogram(spectrograms), absent, {}
        clips = batch["audio"].shape[0]
        first, second = spectrograms[:clips], spectrograms[clips : 2 * clips]
        frames_first, frames_second = frame_tokens(first), frame_tokens(second)
        prediction = self.prediction_loss(torch.cat([frames_first, frames_second]))
        _, dropped = self.select(frames_first, frames_second)
        spectrograms = torch.cat([spectrograms, replace_frames(second, dropped, self.mask_frame)])
        return self.project_spectrogram(spectrograms), torch.cat([absent, absent[clips : 2 * clips]]), {"prediction": prediction}

    def compute_loss(self, batch):
        z, absent, extra = self.embed_views(batch)
        clips = batch["audio"].shape[0]
        n_views = z.shape[0] // clips
        labels = batch["labels"].repeat(n_views, 1) if "labels" in self.params.positives and batch["labels"].shape[1] else None
        items = batch["index"].repeat(n_views) if "sources" in self.params.positives else None
        kept = ~absent if "source_crop" in self.params.views else None  # on every process alike: it is gathered
        losses, counted = self.loss.anchor_losses(z, nt_xent_ids(clips, n_views, z.device), labels, items, kept)
        loss = global_mean(losses, counted)
        logged = {}
        if extra:
            logged = {"objective": loss.detach(), "prediction": extra["prediction"].detach()}
            loss = loss + self.params.prediction_weight * extra["prediction"]
        if labels is not None:
            logged["labelled_clips"] = batch["labelled"].sum().float()
        if "source_crop" in self.params.views:
            logged["source_present"] = batch["source_present"][:, 0].float().mean()
        return loss, logged
