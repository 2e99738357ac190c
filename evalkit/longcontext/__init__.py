"""Long context: seeded synthetic tasks whose lengths are exact in each model's own tokenizer.

Parts (one module per idea):
    haystack    filler the needles hide in: the noise sentence, generated prose, a user's text file
    generators  passkey, niah, variable_tracking, common_words, frequent_words, associative_recall
                (the GENERATORS registry: entry-point group evalkit.generators)
    fit         choose the amount of filler so a prompt lands just under its target length
    runner      grid → fitted prompts → requests → scores → matrix
    executor    the `long_context` task executor (checks, catalogue line, preview, run)
    score       RULER's all/any scores, the strict variant, ranking, effective context lengths
    check       load-time checks of a task file's `long_context` block (file:line errors)
"""

from evalkit.longcontext.check import with_grid
from evalkit.longcontext.generators import GENERATORS, Generator, get_generator

__all__ = ["GENERATORS", "Generator", "get_generator", "with_grid"]
