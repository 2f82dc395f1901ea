# Issue 14, lead c: the same fine-tune as lightflow_w0.5_1xb16-4k-ft_synthetic-128x128.py, but the five predictions
# are upsampled bilinearly (not nearest, §3.1) before they are averaged (LightFlowConfig.pred_upsample). Same start,
# data, seeds and schedule: the difference between the two runs is the flag alone.
_base_ = ['lightflow_w0.5_1xb16-4k-ft_synthetic-128x128.py']
model = dict(pred_upsample='bilinear')
