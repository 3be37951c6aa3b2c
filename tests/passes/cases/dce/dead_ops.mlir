// RUN: dce
// Ops whose results nothing uses go, chains of them included, and inside regions too.
func.func @main(%p: tensor<i1>, %x: tensor<f64>) -> tensor<f64> {
  %dead1 = "gj.exp"(%x) : (tensor<f64>) -> tensor<f64>
  %dead2 = "gj.tanh"(%dead1) : (tensor<f64>) -> tensor<f64>
  %live = "gj.neg"(%x) : (tensor<f64>) -> tensor<f64>
  %r = "gj.cond"(%p) ({
    %dead3 = "gj.exp"(%live) : (tensor<f64>) -> tensor<f64>
    "gj.yield"(%live) : (tensor<f64>) -> ()
  }, {
    "gj.yield"(%x) : (tensor<f64>) -> ()
  }) : (tensor<i1>) -> tensor<f64>
  %dead4 = "gj.cond"(%p) ({
    "gj.yield"(%x) : (tensor<f64>) -> ()
  }, {
    "gj.yield"(%x) : (tensor<f64>) -> ()
  }) : (tensor<i1>) -> tensor<f64>
  func.return %r : tensor<f64>
}
// CHECK:      func.func @main(%arg0: tensor<i1>, %arg1: tensor<f64>) -> tensor<f64> {
// CHECK-NEXT:   [[LIVE:%[0-9]+]] = "gj.neg"(%arg1
// CHECK-NEXT:   [[R:%[0-9]+]] = "gj.cond"(%arg0
// CHECK-NEXT:     "gj.yield"([[LIVE]]
// CHECK-NEXT:   }, {
// CHECK-NEXT:     "gj.yield"(%arg1
// CHECK-NEXT:   }
// CHECK-NEXT:   func.return [[R]]
// CHECK-NOT:  "gj.exp"
// CHECK-NOT:  "gj.cond"
