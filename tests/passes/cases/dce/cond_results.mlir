// RUN: dce
// A cond result nothing uses is dropped from the cond and from both branches' yields,
// and the branch ops computing it go.
func.func @main(%p: tensor<i1>, %x: tensor<f64>) -> tensor<f64> {
  %r:2 = "gj.cond"(%p) ({
    %e = "gj.exp"(%x) : (tensor<f64>) -> tensor<f64>
    %t = "gj.tanh"(%x) : (tensor<f64>) -> tensor<f64>
    "gj.yield"(%e, %t) : (tensor<f64>, tensor<f64>) -> ()
  }, {
    %n = "gj.neg"(%x) : (tensor<f64>) -> tensor<f64>
    "gj.yield"(%x, %n) : (tensor<f64>, tensor<f64>) -> ()
  }) : (tensor<i1>) -> (tensor<f64>, tensor<f64>)
  func.return %r#1 : tensor<f64>
}
// CHECK:      [[R:%[0-9]+]] = "gj.cond"(%arg0) ({
// CHECK-NEXT:   [[T:%[0-9]+]] = "gj.tanh"(%arg1
// CHECK-NEXT:   "gj.yield"([[T]]) : (tensor<f64>) -> ()
// CHECK-NEXT: }, {
// CHECK-NEXT:   [[N:%[0-9]+]] = "gj.neg"(%arg1
// CHECK-NEXT:   "gj.yield"([[N]]) : (tensor<f64>) -> ()
// CHECK-NEXT: }) : (tensor<i1>) -> tensor<f64>
// CHECK-NEXT: func.return [[R]]
// CHECK-NOT:  "gj.exp"
