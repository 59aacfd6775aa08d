"""The shared adversarial pieces: DiffAugment moves labels with pixels and stays differentiable, the
class-balanced cross-entropy ignores shifted-in pixels, the segmentation discriminator labels every pixel."""
import torch

from sparsesis.models.gan import IGNORE, SegmentationDiscriminator, balanced_ce, diff_augment, feature_matching, hinge_d


def test_diff_augment_moves_labels_with_the_pixels_and_keeps_gradients():
    torch.manual_seed(0)
    img = torch.zeros(4, 3, 16, 16, requires_grad=True)
    labels = torch.arange(16).repeat(16, 1).expand(4, 16, 16).clone()  # each column its own label
    with torch.no_grad():
        img[:, 0] = labels.float() / 16  # the red channel encodes the column
    out, lab = diff_augment(img, labels, torch.Generator().manual_seed(3))
    assert out.shape == img.shape and lab.shape == labels.shape
    shifted_in = lab == IGNORE
    assert shifted_in.any()  # a 2-pixel shift at most at 16 px, drawn for 4 images: some move
    # where a label survived, the column it names is where the pixel came from: red rises with the label
    for i in range(4):
        row = lab[i, 8]
        kept = row != IGNORE
        red = out[i, 0, 8][kept]
        assert torch.all(red[1:] > red[:-1]) or kept.sum() < 2
    out.sum().backward()
    assert img.grad is not None and img.grad.abs().sum() > 0
    again, lab2 = diff_augment(img.detach(), labels, torch.Generator().manual_seed(3))
    assert torch.equal(again, out.detach()) and torch.equal(lab2, lab)  # the same generator, the same draw


def test_balanced_ce_leaves_ignored_pixels_out():
    logits = torch.randn(1, 3, 4, 4)
    target = torch.randint(0, 3, (1, 4, 4))
    spoiled = target.clone()
    spoiled[0, 0] = IGNORE
    garbage = logits.clone()
    garbage[0, :, 0] = torch.tensor([100.0, -100.0, 0.0])[:, None]  # whatever sits there must not count
    assert torch.isclose(balanced_ce(logits, spoiled), balanced_ce(garbage, spoiled))
    assert not torch.isclose(balanced_ce(logits, target), balanced_ce(garbage, target))


def test_segmentation_discriminator_labels_every_pixel_and_exposes_features():
    d = SegmentationDiscriminator(num_classes=9, ch=4).eval()  # eval: spectral norm stops its power iteration
    feats = d.features(torch.randn(2, 3, 32, 32))
    assert feats[-1].shape == (2, 10, 32, 32) and len(feats) == 5
    assert torch.equal(d(torch.zeros(1, 3, 16, 16)), d.features(torch.zeros(1, 3, 16, 16))[-1])


def test_hinge_and_feature_matching_are_zero_where_they_should_be():
    real = [[torch.ones(1, 2, 3, 3), torch.full((1, 1, 3, 3), 2.0)]]
    fake = [[torch.ones(1, 2, 3, 3), torch.full((1, 1, 3, 3), -2.0)]]
    assert hinge_d(real, fake) == 0  # both beyond the margin
    assert feature_matching(real, fake) == 0 and feature_matching(real, [[torch.zeros(1, 2, 3, 3), fake[0][1]]]) == 1
