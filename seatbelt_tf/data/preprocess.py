"""Image preprocessing shared by the file-backed datasets: centre crop, resize to 64x64, optional grayscale.

As in Chen et al. (2018) for CelebA and Kulkarni et al. (2015) for Chairs (paper Appendix C), images are centre
cropped (to a given square, or to the largest centred square) and downsampled to 64x64 with area averaging, so
no aliasing is introduced. The result stays uint8; scaling to the data range happens in the source.
"""

import tensorflow as tf

IMAGE_SIZE = 64


def square_resize(image, size=IMAGE_SIZE, crop=None, grayscale=False):
  """Centre crop and area-resize one image: uint8 `[H, W, C]` -> uint8 `[size, size, C_out]`.

  Args:
    image: uint8 `[H, W, C]`. An alpha channel is dropped.
    size: output side.
    crop: side of the centred square crop (clipped to the image); None crops the largest centred square.
    grayscale: convert colour images to one channel (ITU-R 601 luma).

  Returns:
    uint8 `[size, size, C_out]` with C_out = 1 when `grayscale` or the input has one channel, else 3.
  """
  image = tf.convert_to_tensor(image)
  channels = image.shape[-1]
  if channels == 4:
    image = image[..., :3]
  elif channels == 2:
    image = image[..., :1]
  if grayscale and image.shape[-1] == 3:
    image = tf.image.rgb_to_grayscale(image)
  shape = tf.shape(image)
  height, width = shape[0], shape[1]
  side = tf.minimum(height, width) if crop is None else tf.minimum(tf.minimum(height, width), crop)
  top, left = (height - side) // 2, (width - side) // 2
  image = image[top:top + side, left:left + side]
  resized = tf.image.resize(tf.cast(image, tf.float32), [size, size], method="area")
  return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)
