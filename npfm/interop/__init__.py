"""Weights in and out of other libraries' layouts (Hugging Face GPT-2 and BERT).

    hf_gpt2   GPT  <-> GPT2LMHeadModel   (config.json, model.safetensors, vocab.json, merges.txt)
    hf_llama  GPT (arch "llama") <-> LlamaForCausalLM   (config.json, model.safetensors)
    hf_bert   BERT <-> BertForMaskedLM / BertModel   (config.json, model.safetensors, vocab.txt)

Each module reads and writes with npfm's own safetensors reader and writer and
maps names with one table; neither needs torch.
"""
