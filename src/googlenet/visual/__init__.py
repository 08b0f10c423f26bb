"""Looking inside GoogLeNet: the architecture drawn from the table (`diagram`, torch-free), where
the network looked (`explain`), its filters and feature maps (`filters`), and feature
visualisation and DeepDream (`optimize`). Pictures are matplotlib figures or PIL images; the
CLI writes them (`pictures.save_figure`, `pictures.save_image`)."""
