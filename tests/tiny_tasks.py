"""Tiny training tasks shared by the tests that train on both floors (tests/functional,
tests/models): small enough for a few steps in a second."""


def tiny_bert_task(eval_batches=1):
    """BERT pre-training (MLM + NSP) on six six-sentence documents, the tiny preset."""
    from npfm.models.bert import BertForPreTraining, preset
    from npfm.tasks.bert import BertPretrainTask, split_for_pretraining
    from npfm.tokenizers.wordpiece import WordPieceTokenizer
    docs = [[f"Sentence {i} of document {d} has words like loop and break." for i in range(6)]
            for d in range(6)]
    train_docs, val_docs = split_for_pretraining(docs)
    tok = WordPieceTokenizer.train([" ".join(d) for d in train_docs], 80)
    model = BertForPreTraining(preset("tiny", vocab_size=tok.vocab_size, max_len=24))
    return BertPretrainTask(model, tok, train_docs, val_docs, batch_size=4, n_passes=2,
                            eval_batches=eval_batches)
