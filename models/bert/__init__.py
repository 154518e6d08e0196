"""BERT-family comparison model: all-MiniLM-L6-v2 with a 3-class sentiment head (needs the `bert` extra).

A comparison model, not the production one: serving stays on the ONNX LSTM (`models.predictor`), and
torch/transformers are imported only when a model is built. One module per concern:

- `models.bert.text`: `prepare_text`, the text the encoder sees (the shared repairs, then BERT's form);
- `models.bert.model`: `BertSentiment` (encoder + head, encoding, prediction, save/load),
  `EncodedTexts`, `bert_unavailable_reason`;
- `models.bert.training`: `fit_frozen_head` and `fine_tune` (top layers on kept lower-layer states);
- `models.bert.experiment`: the tracked comparison run, `train_bert(BertExperiment(...))`, and
  `measure_speed`;
- `models.bert.cli`: `python -m models.bert`.
"""
