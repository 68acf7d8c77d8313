"""Model core: ResNet45/timm backbones, transformer, position attention, BCN, fusion, SeqCLR."""
