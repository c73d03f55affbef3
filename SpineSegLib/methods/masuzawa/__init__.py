"""``masuzawa``: the iterative instance segmentation of Masuzawa et al. 2020 (pipeline ``ct-iterative``).

Stage 1, the Semantic Segmentation Net, labels cervical, thoracic and lumbar vertebrae on a coarse
grid; their boxes bound the spine. Stage 2, the Iterative Instance Segmentation Net, sees a patch of
the CT and a memory channel of the vertebrae segmented so far and outputs the next vertebra; the
patch walks down the spine (Lessmann et al.'s traversal) until no new vertebra appears. Labels are
counted from the thoracolumbar (else the cervicothoracic) boundary of the stage-1 regions; centroids
come from the masks. Importing this package imports torch and SimpleITK; the registry entry does not.
"""
