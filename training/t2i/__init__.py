"""Text-to-image (GAN-INT-CLS at 64 px, Reed et al. 2016) on Oxford-102 flowers.

captions        attribute captions from class name + colours measured on the image
encoder_export  all-MiniLM-L6-v2 -> ONNX (mean pooling + L2 norm in the graph), int8, card
data            the flowers64 data set, the class-disjoint hold-out, cached caption embeddings
nets            generator G(z, phi(t)) and matching-aware discriminator D(x, phi(t))
train           the training loop (GAN-CLS + GAN-INT, EMA of G, sample grids, resume)
classifier      a small 102-class flower CNN used to evaluate generated images
evaluate        class accuracy, Frechet distance, colour accuracy, diversity, with baselines
export          G -> ONNX + card
"""
