// The one bundle viewer.html inlines: three.js, the GaussianSplats3D renderer and three's glTF loader as globals
// (the loader lets a page or a test play animated.glb with the same three.js).
import * as THREE from "three";
import { GLTFLoader } from "three/examples/jsm/loaders/GLTFLoader.js";
import * as GaussianSplats3D from "@mkkellogg/gaussian-splats-3d";

window.THREE = THREE;
window.GLTFLoader = GLTFLoader;
window.GaussianSplats3D = GaussianSplats3D;
