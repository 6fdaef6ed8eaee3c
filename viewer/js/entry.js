// The one bundle viewer.html inlines: three.js and the GaussianSplats3D renderer as globals.
import * as THREE from "three";
import * as GaussianSplats3D from "@mkkellogg/gaussian-splats-3d";

window.THREE = THREE;
window.GaussianSplats3D = GaussianSplats3D;
