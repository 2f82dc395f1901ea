# Light Flow supervised by the exact motion of the synthetic VID videos (issue 20: "the same exact flow supervises Light
# Flow on the detector's own videos"), at the flow size the synthvid detector configs run it at (224x288 frames,
# flow_scale 0.5, resized to the /64 grid: 128x128). The teacher adaptation
# (lightflow_w0.5_1xb16-6k-adapt_synthvid-128x128.py) with its DIS teacher swapped for the generator's flow: the same
# start weights, schedule, size and generator pairs mixed in. Each pair is (frame t, key t - g), g in 1..l-1
# (key interval l = 10), read from the set's JPEGs; the target is the exact flow t -> key rebuilt from the scene
# (lightflow.data.SyntheticVIDExactPairs), valid where the point of t is visible in the key. Loss: L1 on that flow
# (the census and smoothness terms of the teacher recipe are off: nothing is missing from an exact target; turn them on
# with --cfg-options model.photometric_weight=0.1 model.smooth_weight=0.5 to change the target alone). Checkpoints are
# chosen by the EPE against exact flow on held-out videos of another generator seed (never the detector's val videos,
# which the detector's numbers are reported on):
#   python tools/make_synthetic_vid.py data/synthetic_vid_flowval --num-videos 1 --num-val-videos 4 --seed 7
#   python tools/train_flow.py configs/lightflow/lightflow_w0.5_1xb16-6k-exact_synthvid-128x128.py --work-dir W \
#       --cfg-options data_root=<a make_synthetic_vid.py output>/ val_dataloader.dataset.dataset.data_root=<flowval>/ \
#       test_dataloader.dataset.dataset.data_root=<flowval>/
# A shorter run: train_cfg.max_iters=N param_scheduler.1.end=N param_scheduler.1.T_max=<N - 1000> (the cosine's end).
# Everything not written here (schedule, size, transforms, loaders, hooks) is the teacher adaptation's.
_base_ = ['lightflow_w0.5_1xb16-6k-adapt_synthvid-128x128.py']

data_root = 'data/synthetic_vid/'  # written by tools/make_synthetic_vid.py (its marker records the scenes)
val_data_root = 'data/synthetic_vid_flowval/'  # another seed: checkpoints are never chosen on the detector's val set
model = dict(photometric_weight=0.0, smooth_weight=0.0)
train_dataloader = dict(dataset=dict(datasets=[
    # Every (t, t - g) pair of the default set (20 videos x 120 frames: ~1,035 per video, ~20.7k in all), so the
    # generator pairs are ~30 % of the mix, as in the teacher adaptation.
    dict(type='PackedFlowDataset',
         dataset=dict(type='SyntheticVIDExactPairs', data_root=data_root, split='train', size=_base_.size,
                      max_gap=_base_.max_gap, pairs_per_video=1024, seed=0),
         transforms=_base_.train_transforms),
    _base_.train_dataloader.dataset.datasets[1],  # the generator pairs
]))
val_dataloader = dict(dataset=dict(
    _delete_=True, type='PackedFlowDataset',
    dataset=dict(type='SyntheticVIDExactPairs', data_root=val_data_root, split='val', size=_base_.size,
                 max_gap=_base_.max_gap, pairs_per_video=32, seed=1),
    transforms='eval'))
test_dataloader = val_dataloader
