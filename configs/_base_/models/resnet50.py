# resnet50; the leaf config sets net.num_classes and the data preprocessor of
# its dataset.
model = dict(
    type='ImageClassifier',
    net=dict(type='resnet50', stem='cifar', num_classes=10),
    label_smoothing=0.0,
)
