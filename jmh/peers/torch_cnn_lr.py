# The small CNN of `./fst4j train --model cnn` in torch, trained as the trainer does by default (SGD lr, momentum 0.9,
# weight decay 5e-4, label smoothing 0.1, 1 warm-up step then cosine) on 2,000 Fashion-MNIST images for one epoch.
# Usage: python3 jmh/peers/torch_cnn_lr.py LR SEED   (README: lr 0.1 diverges in torch too, 0.01 learns)
import gzip, numpy as np, torch, torch.nn as nn, math, sys
torch.manual_seed(int(sys.argv[2]) if len(sys.argv)>2 else 0); torch.set_num_threads(2)
def imgs(p): return np.frombuffer(gzip.open(p).read(),np.uint8,offset=16).reshape(-1,1,28,28)
def labs(p): return np.frombuffer(gzip.open(p).read(),np.uint8,offset=8)
d='/usr/share/datasets/fashion-mnist/'
X=torch.tensor((imgs(d+'train-images-idx3-ubyte.gz')[:2000]/255.-0.2860)/0.3530,dtype=torch.float32); Y=torch.tensor(labs(d+'train-labels-idx1-ubyte.gz')[:2000]).long()
Xt=torch.tensor((imgs(d+'t10k-images-idx3-ubyte.gz')[:2000]/255.-0.2860)/0.3530,dtype=torch.float32); Yt=torch.tensor(labs(d+'t10k-labels-idx1-ubyte.gz')[:2000]).long()
m=nn.Sequential(nn.Conv2d(1,32,3,1,1,bias=False),nn.BatchNorm2d(32),nn.ReLU(),nn.Conv2d(32,64,3,1,1,bias=False),nn.BatchNorm2d(64),nn.ReLU(),nn.MaxPool2d(2),
 nn.Conv2d(64,128,3,1,1,bias=False),nn.BatchNorm2d(128),nn.ReLU(),nn.MaxPool2d(2),nn.Flatten(),nn.Linear(6272,10))
lr=float(sys.argv[1]); opt=torch.optim.SGD(m.parameters(),lr=lr,momentum=0.9,weight_decay=5e-4)
steps=math.ceil(2000/128); lossf=nn.CrossEntropyLoss(label_smoothing=0.1)
perm=torch.randperm(2000)
for s in range(steps):
    cur = lr if s<1 else 0.5*lr*(1+math.cos(math.pi*(s-1)/(steps-1)))
    for g in opt.param_groups: g['lr']=cur
    idx=perm[s*128:(s+1)*128]; l=lossf(m(X[idx]),Y[idx]); opt.zero_grad(); l.backward(); opt.step(); print(s, round(l.item(),3), end='; ')
m.eval()
with torch.no_grad(): print('\nacc', (m(Xt).argmax(1)==Yt).float().mean().item())
