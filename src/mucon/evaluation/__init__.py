"""Evaluation of frozen encoders: embeddings, probes, metrics, tasks, robustness, baselines, reports.

Entry points: ``embed_folder`` (a folder's embeddings and labels to disk) and ``evaluate`` (models x
tasks -> results.json, results.md and figures). Tasks are data: ``load_task`` reads a CSV table
with a YAML header, ``corpus_tasks`` derives the built-in tasks of a mucon corpus.
"""

from mucon.evaluation.benchmarks import resolve_tasks
from mucon.evaluation.embed import FileEmbeddings
from mucon.evaluation.export import FolderEmbeddings, embed_folder
from mucon.evaluation.run import evaluate
from mucon.evaluation.tasks import Task, corpus_tasks, load_task

__all__ = [
    "FileEmbeddings",
    "FolderEmbeddings",
    "Task",
    "corpus_tasks",
    "embed_folder",
    "evaluate",
    "load_task",
    "resolve_tasks",
]
