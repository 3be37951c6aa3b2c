// RUN: fusion dce memory
// With a dimension unknown (`?`, before the Session specialises the fed shapes) every value
// still gets its kind, but no offset, and the arena's size is unknown; values whose shapes
// are known have their sizes. A cond result has a buffer of its own, into which each
// branch's yield copies.
func.func @main(%p: tensor<i1>, %x: tensor<?x3xf32>, %y: tensor<4xf32>) -> tensor<4xf32> {
  %a = "gj.exp"(%x) : (tensor<?x3xf32>) -> tensor<?x3xf32>
  %b = "gj.reduce_sum"(%a) {axes = [0, 1], keepdims = false} : (tensor<?x3xf32>) -> tensor<f32>
  %r = "gj.cond"(%p) ({
    %t = "gj.tanh"(%y) : (tensor<4xf32>) -> tensor<4xf32>
    "gj.yield"(%t) : (tensor<4xf32>) -> ()
  }, {
    "gj.yield"(%y) : (tensor<4xf32>) -> ()
  }) : (tensor<i1>) -> tensor<4xf32>
  %s = "gj.mul"(%r, %b) : (tensor<4xf32>, tensor<f32>) -> tensor<4xf32>
  func.return %s : tensor<4xf32>
}
// CHECK:      [[A:%[0-9]+]] = "gj.fused"(%arg1
// CHECK:      [[B:%[0-9]+]] = "gj.fused"([[A]]
// CHECK:      [[R:%[0-9]+]] = "gj.cond"(%arg0
// CHECK-NEXT:   [[T:%[0-9]+]] = "gj.fused"(%arg2
// CHECK:      [[S:%[0-9]+]] = "gj.fused"([[R]], [[B]]
// CHECK:      // memory: [[A]] arena bytes=None
// CHECK-NEXT: // memory: [[B]] arena bytes=4
// CHECK-NEXT: // memory: [[R]] arena bytes=16
// CHECK-NEXT: // memory: [[T]] arena bytes=16
// CHECK-NEXT: // memory: [[S]] output bytes=16
// CHECK-NEXT: // memory: arena size unknown until shapes are known
