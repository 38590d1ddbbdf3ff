# wrn28-10; the leaf config sets net.num_classes and the data preprocessor of
# its dataset.
model = dict(
    type='ImageClassifier',
    net=dict(type='wide_resnet28_10', num_classes=10),
    label_smoothing=0.0,
)
