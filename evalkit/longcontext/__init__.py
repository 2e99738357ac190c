"""Long context: seeded synthetic tasks whose lengths are exact in each model's own tokenizer.

Parts (one module per idea):
    haystack    filler the needles hide in: the noise sentence, generated prose, a user's text file
    generators  passkey, niah, variable_tracking, common_words, frequent_words, associative_recall
    fit         choose the amount of filler so a prompt lands just under its target length
    runner      the `long_context` task kind: grid → fitted prompts → requests → scores → matrix
    score       RULER's all/any scores, the strict variant, ranking, effective context lengths
    check       load-time checks of a task file's `long_context` block (file:line errors)
"""
