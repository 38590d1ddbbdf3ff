# SAM (rho 0.05) with Adam as the base optimizer (paper Table 4, "SAM").
_base_ = ['./simcc_res50_adam_1xb64-210e_mpii-256x256.py']
optim_wrapper = dict(type='SAMOptimWrapper', rho=0.05)
