"""The 4D viewer: a self-contained web page that plays one result's Gaussians frame by frame (viewer/page.py).

The page inlines static/splats.min.js (three.js and the GaussianSplats3D renderer, built from viewer/js by
`npm ci && npm run build`; licences in static/LICENSES.md) and the frames as base64 .splat data, so it works
when opened from disk, served by view.py, or embedded in the app.
"""
