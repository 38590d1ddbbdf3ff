# ResNet-18 on CIFAR-100, SAM + InfoBatch on the second loss, L(w + eps), whose
# gradient updates the weights (paper Table 5, "SAM+Info"); the first pass is
# unweighted. Pruning as in the SGD + InfoBatch sibling.
_base_ = ['./resnet18_sgd-info_1xb128_cifar100.py']
optim_wrapper = dict(type='SAMOptimWrapper', rho=0.05, infobatch_pass='second')
