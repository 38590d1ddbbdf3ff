# ResNet-18 on CIFAR-100, SAM + InfoBatch on the first loss, L(w), which sets
# the perturbation (paper Table 5, "SAM+Info*").
_base_ = ['./resnet18_sam-info_1xb128_cifar100.py']
optim_wrapper = dict(infobatch_pass='first')
