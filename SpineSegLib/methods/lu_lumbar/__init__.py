"""``lu_lumbar``: the two-stage lumbar method of Lu et al. 2023 (pipeline ``ct-lumbar``).

Stage 1 regresses a lumbar-spine heatmap (the Gaussian-smoothed L1-L5 mask) on the whole image at a
coarse spacing; the box of its largest bright region (> 0.3 of the peak), expanded by 0.1 of the
image size per axis, is the crop. Stage 2, the 3D multi-scale XUNet, segments L1-L5 (L6) in the
crop as classes of one softmax on the bone window (level 400, width 1800 HU). Centroids come from
the masks. Importing this package imports torch and SimpleITK; the registry entry does not.
"""
