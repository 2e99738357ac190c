"""Where a task's documents come from: offline mirrors, the user's files, or the Hugging Face hub.

`load_documents(task, role)` is the one entry point; it returns the preprocessed documents and
the `SourceFacts` that a run records, so every score says exactly which samples it is over.
"""

from evalkit.sources._counts import counted_source, data_identity
from evalkit.sources._load import DocumentCheck, load_documents
from evalkit.sources._types import Document, LoadedDocuments, SourceFacts, documents_sha256
from evalkit.sources.preprocessors import PREPROCESSORS, Preprocessor, get_preprocessor, preprocessor

__all__ = [
    "PREPROCESSORS",
    "Document",
    "DocumentCheck",
    "LoadedDocuments",
    "Preprocessor",
    "SourceFacts",
    "counted_source",
    "data_identity",
    "documents_sha256",
    "get_preprocessor",
    "load_documents",
    "preprocessor",
]
